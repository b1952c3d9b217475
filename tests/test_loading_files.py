"""Safe file reading, format detection, and wrong-loader errors."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from framefold.pipelines.loading import detect
from framefold.pipelines.loading.checkpoint import load_checkpoint
from framefold.pipelines.loading.files import (
    WeightFileError,
    load_latent_file,
    read_state_dict,
    save_latent_file,
    write_safetensors,
)
from framefold.pipelines.loading.vae import load_vae


def _tensors():
    return {
        "a.weight": torch.randn(3, 2),
        "b.bias": torch.randn(4, dtype=torch.float16),
        "ids": torch.arange(5),
        "flag": torch.tensor([True, False]),
    }


def test_safetensors_round_trip_with_metadata_and_dtype(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", _tensors(), {"k": "v"})
    sd, meta = read_state_dict(path)
    assert meta == {"k": "v"} and set(sd) == set(_tensors())
    assert sd["b.bias"].dtype == torch.float16
    half, _ = read_state_dict(path, dtype="bf16")
    assert half["a.weight"].dtype == torch.bfloat16 and half["b.bias"].dtype == torch.bfloat16
    assert half["ids"].dtype == torch.int64 and half["flag"].dtype == torch.bool
    assert torch.equal(half["ids"], torch.arange(5))
    with pytest.raises(ValueError, match="dtype"):
        read_state_dict(path, dtype="fp8")
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("wrapper", ["state_dict", "params_ema", "params"])
def test_pickle_wrappers_and_module_prefix(tmp_path, wrapper):
    inner = {"module.x.weight": torch.ones(2), "module.y": torch.zeros(1)}
    path = tmp_path / "w.pth"
    torch.save({wrapper: inner, "epoch": 3}, path)
    sd, meta = read_state_dict(path)
    assert set(sd) == {"x.weight", "y"} and meta == {}


def test_truncated_safetensors_names_the_file(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match="cut.safetensors.*truncated or corrupt"):
        read_state_dict(path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(WeightFileError, match="cut.safetensors"):
        read_state_dict(path)


@pytest.mark.parametrize("name", ["empty.safetensors", "empty.ckpt"])
def test_empty_file_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    with pytest.raises(WeightFileError, match=f"{name}.*empty"):
        read_state_dict(path)


class _Payload:
    """Unpickling this would run code that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_pickle_with_code_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": _Payload(marker)}, path)
    with pytest.raises(WeightFileError, match="evil.ckpt.*refused") as info:
        read_state_dict(path)
    assert not marker.exists()
    assert "global 'exec'" in str(info.value)  # the refusal names what the pickle asked for
    # a plain (non-zip) pickle is refused too
    raw = tmp_path / "evil_raw.pt"
    raw.write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(WeightFileError, match="evil_raw.pt"):
        read_state_dict(raw)
    assert not marker.exists()
    # and through the checkpoint loader
    with pytest.raises(WeightFileError, match="evil.ckpt"):
        load_checkpoint(path)
    assert not marker.exists()
    # control: the payload is real (a free unpickler would have run it)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"abc")
    with pytest.raises(WeightFileError, match="unknown weight file type"):
        read_state_dict(tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "nope.safetensors")


def _motion_module_sd(mid=False, pe=24):
    sd = {
        "down_blocks.0.motion_modules.0.temporal_transformer.norm.weight": torch.ones(8),
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe": torch.zeros(
            1, pe, 8
        ),
    }
    if mid:
        sd["mid_block.motion_modules.0.temporal_transformer.norm.weight"] = torch.ones(8)
    return sd


def test_detect_formats():
    assert (
        detect.detect_format(
            {
                "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
                "first_stage_model.encoder.conv_in.weight": torch.zeros(1),
            }
        )
        == "sd_checkpoint"
    )
    assert (
        detect.detect_format({"model.diffusion_model.x": torch.zeros(1)}, {"framefold": "{}"}) == "framefold_checkpoint"
    )
    assert (
        detect.detect_format({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}, {"framefold": "{}"})
        == "standalone_vae"
    )
    assert detect.detect_format(_motion_module_sd()) == "motion_module"
    assert detect.detect_format({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}) == "standalone_vae"
    assert detect.detect_format({"encoder.down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}) == "diffusers_vae"
    assert (
        detect.detect_format(
            {"time_embedding.linear_1.weight": torch.zeros(1), "down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}
        )
        == "diffusers_unet"
    )
    assert detect.detect_format({"control_model.input_hint_block.0.weight": torch.zeros(1)}) == "controlnet"
    assert (
        detect.detect_format(
            {
                "text_model.embeddings.token_embedding.weight": torch.zeros(1),
                "text_model.encoder.layers.0.self_attn.q_proj.weight": torch.zeros(1),
            }
        )
        == "clip_text"
    )
    assert detect.detect_format({"foo": torch.zeros(1)}) == "unknown"
    assert detect.motion_module_version(_motion_module_sd(mid=True, pe=32)) == "v2"
    assert detect.motion_module_version(_motion_module_sd(pe=32)) == "v3"
    assert detect.motion_module_version(_motion_module_sd(pe=24)) == "v1"


def test_motion_module_given_to_checkpoint_loader(tmp_path):
    path = write_safetensors(tmp_path / "mm_sd_v15_v2.safetensors", _motion_module_sd(mid=True, pe=32))
    with pytest.raises(
        detect.WrongLoaderError,
        match=r"mm_sd_v15_v2.safetensors is an AnimateDiff motion module \(v2\).*"
        r"load it with FrameFold Load Motion Module",
    ):
        load_checkpoint(path)
    with pytest.raises(detect.WrongLoaderError, match="FrameFold Load Motion Module"):
        load_vae(path)
    unknown = write_safetensors(tmp_path / "odd.safetensors", {"foo.bar": torch.zeros(1)})
    with pytest.raises(detect.WrongLoaderError, match="odd.safetensors.*no known format.*foo.bar"):
        load_checkpoint(unknown)


def test_latent_file_round_trip(tmp_path):
    samples = torch.randn(3, 4, 5, 6)
    path = save_latent_file(tmp_path / "x.latent", samples)
    assert torch.equal(load_latent_file(path), samples)
    save_file({"latent_tensor": samples}, str(tmp_path / "old.latent"))  # ComfyUI's pre-version-marker files
    assert torch.allclose(load_latent_file(tmp_path / "old.latent"), samples / 0.18215)
    marker = torch.tensor([])
    save_file({"latent_tensor": samples, "latent_format_version_0": marker}, str(tmp_path / "core.latent"))
    assert torch.equal(load_latent_file(tmp_path / "core.latent"), samples)  # ComfyUI --disable-metadata
    save_file(
        {"latent_tensor": samples, "latent_format_version_0": marker}, str(tmp_path / "c2.latent"), {"prompt": "{}"}
    )
    assert torch.equal(load_latent_file(tmp_path / "c2.latent"), samples)  # ComfyUI's Save Latent
    old_ff = {"latent_tensor": samples, "latent_format_version_0": marker}
    save_file(old_ff, str(tmp_path / "old_ff.latent"), metadata={})  # FrameFold's scaled files: empty metadata
    assert torch.allclose(load_latent_file(tmp_path / "old_ff.latent"), samples / 0.18215)
    save_file({"other": samples}, str(tmp_path / "bad.latent"))
    with pytest.raises(WeightFileError, match="not a latent file"):
        load_latent_file(tmp_path / "bad.latent")
