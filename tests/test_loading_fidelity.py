"""Real-file fidelity of the loaders: lenient-but-loud key policy, errors naming file and full key, variants,
and every wrong file kind refused from its header (before any tensor is read, before anything runs)."""

import json
from pathlib import Path

import pytest
import torch

from framefold.host.registry import default_registry
from framefold.host.validate import validate_prompt
from framefold.host.workflow import ui_to_api
from framefold.nodes._errors import NodeInputError
from framefold.nodes._folders import EMBEDDED_DIR
from framefold.nodes.loaders import FrameFoldCheckpointLoader, FrameFoldVAELoader
from framefold.nodes.motion import FrameFoldLoadMotionModule
from framefold.pipelines.loading import checkpoint, motion, vae
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.files import read_header, read_state_dict, write_safetensors
from framefold.pipelines.loading.state_dict import DroppedKeysWarning, StateDictError
from framefold.pipelines.loading.unet import UnsupportedVariantError

CHECKPOINT = EMBEDDED_DIR / "checkpoints" / "framefold-tiny.safetensors"
MOTION = EMBEDDED_DIR / "animatediff_models" / "framefold-tiny-motion.safetensors"
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "example_workflows"


def _rewrite(tmp_path, name, change):
    """A copy of the embedded checkpoint (metadata kept) with its state dict changed by ``change(sd)``."""
    sd, metadata = read_state_dict(CHECKPOINT)
    change(sd)
    return write_safetensors(tmp_path / name, sd, metadata)


def test_stray_lora_and_ema_keys_load_with_a_warning_listing_them(tmp_path):
    def add_strays(sd):
        sd["lora_unet_down_blocks_0_attentions_0_proj_in.alpha"] = torch.tensor(4.0)
        sd["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = torch.zeros(8, 2)
        sd["model_ema.decay"] = torch.tensor(0.9999)
        sd["model_ema.diffusion_modelout2weight"] = torch.zeros(4, 32, 3, 3)
        sd["model.diffusion_model.out.2.lora_down.weight"] = torch.zeros(2, 32)

    path = _rewrite(tmp_path, "merge.safetensors", add_strays)
    with pytest.warns(DroppedKeysWarning) as record:
        model, _, _ = load_checkpoint(path)
    text = " ".join(str(w.message) for w in record)
    assert "merge.safetensors" in text
    for key in (
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha",
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
        "model_ema.decay",
        "model.diffusion_model.out.2.lora_down.weight",
    ):
        assert key in text
    reference, _, _ = load_checkpoint(CHECKPOINT)
    for k, v in reference.unet.state_dict().items():  # the weights are the checkpoint's own
        assert torch.equal(model.unet.state_dict()[k], v)


def test_wrong_shaped_key_is_an_error_naming_file_and_full_key(tmp_path):
    def reshape(sd):
        sd["model.diffusion_model.out.2.weight"] = torch.zeros(4, 16, 3, 3)

    path = _rewrite(tmp_path, "bad_shape.safetensors", reshape)
    with pytest.raises(StateDictError, match=r"bad_shape\.safetensors.*model\.diffusion_model\.out\.2\.weight \(4, 16"):
        load_checkpoint(path)


def test_architecture_changing_key_is_an_error_naming_file_and_full_key(tmp_path):
    def add_block(sd):
        sd["model.diffusion_model.input_blocks.1.2.conv.weight"] = torch.zeros(32, 32, 3, 3)

    path = _rewrite(tmp_path, "extra_block.safetensors", add_block)
    with pytest.raises(StateDictError) as info:
        load_checkpoint(path)
    assert "extra_block.safetensors" in str(info.value)
    assert info.value.unexpected == ["model.diffusion_model.input_blocks.1.2.conv.weight"]


def test_inpainting_checkpoint_is_detected_and_refused_before_reading_tensors(tmp_path, monkeypatch):
    def inpainting(sd):
        w = sd["model.diffusion_model.input_blocks.0.0.weight"]
        sd["model.diffusion_model.input_blocks.0.0.weight"] = torch.cat([w, torch.zeros(w.shape[0], 5, 3, 3)], 1)

    path = _rewrite(tmp_path, "sd-inpainting.safetensors", inpainting)
    monkeypatch.setattr(checkpoint, "read_state_dict", _no_tensor_reads)
    with pytest.raises(UnsupportedVariantError, match=r"sd-inpainting\.safetensors is an inpainting UNet \(9 input"):
        load_checkpoint(path)


def _no_tensor_reads(*args, **kwargs):
    raise AssertionError("a wrong file must be refused from its header, before its tensors are read")


@pytest.fixture
def wrong_files(tmp_path, monkeypatch):
    """One file of every kind in a models folder, in both the right and the wrong loader folders."""
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path))
    _, _, tiny_vae = load_checkpoint(CHECKPOINT)
    files = {
        "checkpoint": CHECKPOINT,
        "motion": MOTION,
        "vae": vae.save_vae(tmp_path / "vae.safetensors", tiny_vae),
        "controlnet": write_safetensors(
            tmp_path / "controlnet.safetensors",
            {
                "control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3),
                "control_model.zero_convs.0.0.weight": torch.zeros(32, 32, 1, 1),
                "control_model.input_blocks.0.0.weight": torch.zeros(32, 4, 3, 3),
            },
        ),
    }
    motion_sd, _ = read_state_dict(MOTION)
    torch.save({"state_dict": motion_sd}, tmp_path / "motion.ckpt")  # a legacy pickle: mapped, not read
    files["motion_ckpt"] = tmp_path / "motion.ckpt"
    data = {k: p.read_bytes() for k, p in files.items()}
    for folder in ("checkpoints", "vae", "animatediff_models"):
        (tmp_path / folder).mkdir()
        for kind, content in data.items():
            (tmp_path / folder / f"{kind}{files[kind].suffix}").write_bytes(content)
    for module in (checkpoint, vae, motion):
        monkeypatch.setattr(module, "read_state_dict", _no_tensor_reads)
    return files


WHAT = {
    "checkpoint": "a FrameFold checkpoint",
    "motion": "an AnimateDiff motion module",
    "motion_ckpt": "an AnimateDiff motion module",
    "vae": "a standalone VAE",
    "controlnet": "a ControlNet",
}
LOADERS = {
    # node, input, file kinds it takes
    "checkpoint": (FrameFoldCheckpointLoader, "ckpt_name", {"checkpoint"}),
    "vae": (FrameFoldVAELoader, "vae_name", {"vae"}),
    "motion": (FrameFoldLoadMotionModule, "model_name", {"motion", "motion_ckpt"}),
}


WRONG_PAIRS = [(loader, kind) for loader in sorted(LOADERS) for kind in sorted(WHAT) if kind not in LOADERS[loader][2]]


@pytest.mark.parametrize("loader,kind", WRONG_PAIRS)
def test_each_wrong_file_kind_is_refused_by_each_loader_saying_what_it_is(wrong_files, loader, kind):
    node, input_name, _ = LOADERS[loader]
    name = f"{kind}{wrong_files[kind].suffix}"
    verdict = node.VALIDATE_INPUTS(**{input_name: name})
    assert isinstance(verdict, str) and WHAT[kind] in verdict and name in verdict and input_name in verdict
    with pytest.raises(NodeInputError, match=WHAT[kind]):
        node().load(**{input_name: name})


def test_right_files_pass_validation(wrong_files):
    assert FrameFoldCheckpointLoader.VALIDATE_INPUTS(ckpt_name="checkpoint.safetensors") is True
    assert FrameFoldVAELoader.VALIDATE_INPUTS(vae_name="vae.safetensors") is True
    assert FrameFoldLoadMotionModule.VALIDATE_INPUTS(model_name="motion.safetensors") is True
    assert FrameFoldLoadMotionModule.VALIDATE_INPUTS(model_name="motion_ckpt.ckpt") is True
    assert "not found" in FrameFoldVAELoader.VALIDATE_INPUTS(vae_name="nope.safetensors")


def test_header_reading_gives_names_shapes_and_metadata_without_data(wrong_files):
    header = read_header(CHECKPOINT)
    assert all(t.is_meta for t in header.tensors.values()) and "framefold" in header.metadata
    assert tuple(header.tensors["model.diffusion_model.out.2.weight"].shape) == (4, 32, 3, 3)
    legacy = read_header(wrong_files["motion_ckpt"])
    assert all(t.is_meta for t in legacy.tensors.values()) and any("motion_modules." in k for k in legacy.tensors)


def test_wrong_files_are_refused_at_graph_validation_before_anything_runs(wrong_files):
    """The text-to-video example with a VAE in its motion-module loader and a ControlNet in its checkpoint loader:
    the validation step (which runs before any node executes) reports both, naming what the files are."""
    registry = default_registry()
    ui_graph = json.loads((EXAMPLES_DIR / "text_to_video.json").read_text())
    prompt = ui_to_api(ui_graph, registry)
    assert validate_prompt(prompt, registry).node_errors == {}  # the example as shipped is valid
    ids = {node["class_type"]: node_id for node_id, node in prompt.items()}
    prompt[ids["FrameFoldLoadMotionModule"]]["inputs"]["model_name"] = "vae.safetensors"
    prompt[ids["FrameFoldCheckpointLoader"]]["inputs"]["ckpt_name"] = "controlnet.safetensors"
    result = validate_prompt(prompt, registry)
    messages = {
        node: " ".join(e["message"] + " " + e.get("details", "") for e in entry["errors"])
        for node, entry in result.node_errors.items()
    }
    assert set(messages) == {ids["FrameFoldLoadMotionModule"], ids["FrameFoldCheckpointLoader"]}
    assert "vae.safetensors is a standalone VAE" in messages[ids["FrameFoldLoadMotionModule"]]
    assert "controlnet.safetensors is a ControlNet" in messages[ids["FrameFoldCheckpointLoader"]]
