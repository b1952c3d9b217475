"""Loader, text and latent nodes: node API shape, decode failure -> saved latents -> Load Latent."""

import pytest
import torch

from framefold.nodes import _folders
from framefold.nodes._errors import NodeInputError
from framefold.nodes.conditioning import NODE_CLASS_MAPPINGS as TEXT_NODES
from framefold.nodes.conditioning import FrameFoldTextEncode
from framefold.nodes.latent import NODE_CLASS_MAPPINGS as LATENT_NODES
from framefold.nodes.latent import FrameFoldEmptyVideoLatent, FrameFoldLoadLatent, FrameFoldSaveLatent
from framefold.nodes.loaders import NODE_CLASS_MAPPINGS as LOADER_NODES
from framefold.nodes.loaders import FrameFoldCheckpointLoader, FrameFoldVAELoader
from framefold.nodes.vae_codec import NODE_CLASS_MAPPINGS as VAE_NODES
from framefold.nodes.vae_codec import FrameFoldVAEDecode, FrameFoldVAEEncode
from framefold.pipelines.loading.checkpoint import save_framefold_checkpoint
from framefold.pipelines.loading.files import write_safetensors
from framefold.pipelines.loading.vae import save_vae
from framefold.pipelines.models.clip import CLIPTextConfig, CLIPTextModel, TextEncoder
from framefold.pipelines.models.tokenizers import CLIPTokenizer
from framefold.pipelines.models.vae import VAE, AutoencoderKL, AutoencoderKLConfig

TINY_VAE = AutoencoderKLConfig(ch=8, ch_mult=(1, 2), num_res_blocks=1, norm_groups=4)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMEFOLD_MODELS", str(tmp_path / "models"))
    _folders.set_io_dirs(output=tmp_path / "output", input=tmp_path / "input")
    yield tmp_path
    _folders.set_io_dirs(output=None, input=None)


def _vae(seed=0):
    torch.manual_seed(seed)
    return VAE(AutoencoderKL(TINY_VAE).eval())


def test_every_input_has_a_tooltip_and_names_are_prefixed(folders):
    for mapping in (LATENT_NODES, VAE_NODES, LOADER_NODES, TEXT_NODES):
        for name, cls in mapping.items():
            assert name.startswith("FrameFold") and cls.CATEGORY.startswith("FrameFold/")
            spec = cls.INPUT_TYPES()
            for section in ("required", "optional"):
                for input_name, (_kind, *opts) in spec.get(section, {}).items():
                    assert opts and opts[0].get("tooltip"), f"{name}.{input_name} has no tooltip"
            assert callable(getattr(cls, cls.FUNCTION))


def test_empty_latent_encode_decode(folders):
    vae = _vae()
    (latent,) = FrameFoldEmptyVideoLatent().generate(vae, width=16, height=8, frames=3)
    assert latent["samples"].shape == (3, 4, 4, 8) and not latent["samples"].any()
    with pytest.raises(NodeInputError, match="FrameFoldEmptyVideoLatent: input 'width'"):
        FrameFoldEmptyVideoLatent().generate(vae, width=15, height=8, frames=3)
    images = torch.rand(3, 8, 16, 3)
    (enc,) = FrameFoldVAEEncode().encode(images, vae)
    (enc2,) = FrameFoldVAEEncode().encode(images, vae, mode="sample", seed=7)
    (enc3,) = FrameFoldVAEEncode().encode(images, vae, mode="sample", seed=7, frame_chunk=1)
    assert (enc2["samples"] - enc3["samples"]).abs().max() <= 1e-6
    (out,) = FrameFoldVAEDecode().decode(enc, vae, frame_chunk=2)
    assert out.shape == (3, 8, 16, 3) and out.dtype == torch.float32
    (tiled,) = FrameFoldVAEDecode().decode(enc, vae, tile_size=16, tile_overlap=0)
    assert tiled.shape == out.shape
    with pytest.raises(NodeInputError, match="input 'samples'.*4 channels"):
        FrameFoldVAEDecode().decode({"samples": torch.zeros(1, 3, 4, 4)}, vae)


def test_failed_decode_saves_latents_and_load_latent_resumes(folders, monkeypatch):
    vae = _vae()
    latents = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(1))

    def boom(*args, **kwargs):
        raise MemoryError("out of memory (simulated)")

    monkeypatch.setattr(vae, "decode", boom)
    with pytest.raises(RuntimeError, match="out of memory") as info:
        FrameFoldVAEDecode().decode({"samples": latents}, vae)
    saved = list((folders / "output" / "latents").glob("*.latent"))
    assert len(saved) == 1 and str(saved[0]) in str(info.value)
    choices = FrameFoldLoadLatent.INPUT_TYPES()["required"]["latent"][0]
    name = f"latents/{saved[0].name} [output]"
    assert name in choices and name in str(info.value)
    assert FrameFoldLoadLatent.VALIDATE_INPUTS(name) is True
    (loaded,) = FrameFoldLoadLatent().load(name)
    assert torch.equal(loaded["samples"], latents)
    assert isinstance(FrameFoldLoadLatent.VALIDATE_INPUTS("../../etc/passwd"), str)


def test_save_latent_node_names_files_like_comfyui(folders):
    latents = torch.randn(2, 4, 3, 3)
    ui = FrameFoldSaveLatent().save({"samples": latents}, "latents/clip", prompt={"1": {"class_type": "X"}})
    assert ui["ui"]["latents"] == [{"filename": "clip_00001_.latent", "subfolder": "latents", "type": "output"}]
    (folders / "output" / "latents" / "clip_00007_.latent").write_bytes(b"")  # ComfyUI: one above the highest
    ui = FrameFoldSaveLatent().save({"samples": latents}, "latents/clip")
    assert ui["ui"]["latents"][0]["filename"] == "clip_00008_.latent"
    ui = FrameFoldSaveLatent().save({"samples": latents}, "runs/a/clip")
    assert ui["ui"]["latents"][0] == {"filename": "clip_00001_.latent", "subfolder": "runs/a", "type": "output"}
    ui = FrameFoldSaveLatent().save({"samples": latents}, "top")
    assert ui["ui"]["latents"][0] == {"filename": "top_00001_.latent", "subfolder": "", "type": "output"}
    (loaded,) = FrameFoldLoadLatent().load("latents/clip_00001_.latent [output]")
    assert torch.equal(loaded["samples"], latents)
    from safetensors import safe_open

    with safe_open(str(folders / "output" / "latents" / "clip_00001_.latent"), "pt") as f:
        assert sorted(f.keys()) == ["latent_format_version_0", "latent_tensor"]  # what ComfyUI's Load Latent reads
        assert f.metadata()["prompt"] == '{"1": {"class_type": "X"}}'
    for bad in ("../x", "latents/", "a/../../x", "/abs/x"):
        with pytest.raises(NodeInputError, match="FrameFoldSaveLatent: input 'filename_prefix'"):
            FrameFoldSaveLatent().save({"samples": latents}, bad)


def test_latent_samples_are_raw_vae_latents_like_comfyui(folders):
    """VAE Encode gives the VAE's raw posterior mean (ComfyUI's VAE Encode does not scale); decode takes it back."""
    vae = _vae()
    images = torch.rand(2, 8, 16, 3)
    (enc,) = FrameFoldVAEEncode().encode(images, vae)
    with torch.no_grad():
        mean, _ = vae.model.encode_moments(images.permute(0, 3, 1, 2) * 2 - 1)
    assert torch.allclose(enc["samples"], mean, atol=1e-6)
    scaled = vae.encode(images)
    assert torch.allclose(enc["samples"] * vae.config.scaling_factor, scaled, atol=1e-6)
    (out,) = FrameFoldVAEDecode().decode(enc, vae)
    assert torch.allclose(out, vae.decode(scaled), atol=1e-5)


def test_save_latent_takes_the_next_free_number_and_leaves_no_temp_file(folders):
    latents = torch.randn(1, 4, 2, 2)
    out = folders / "output" / "latents"
    out.mkdir(parents=True)
    (out / "clip_00003_.latent").write_bytes(b"taken")
    names = [
        FrameFoldSaveLatent().save({"samples": latents}, "latents/clip")["ui"]["latents"][0]["filename"] for _ in "ab"
    ]
    assert names == ["clip_00004_.latent", "clip_00005_.latent"]
    assert sorted(p.name for p in out.iterdir()) == ["clip_00003_.latent", *names]
    assert (out / "clip_00003_.latent").read_bytes() == b"taken"


def _tiny_checkpoint(path):
    from framefold.pipelines.models.unet import UNetConfig, UNetModel

    torch.manual_seed(0)
    unet = UNetModel(
        UNetConfig(
            model_channels=8,
            channel_mult=(1,),
            num_res_blocks=1,
            attention_levels=(0,),
            num_heads=2,
            context_dim=16,
            norm_groups=4,
        )
    )
    text = TextEncoder(
        CLIPTokenizer(), CLIPTextModel(CLIPTextConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32))
    )
    save_framefold_checkpoint(path, unet, _vae(), text, extra={"frame_window": 8})
    return text


def test_checkpoint_loader_and_text_encode(folders):
    ckpt_dir = folders / "models" / "checkpoints"
    text = _tiny_checkpoint(ckpt_dir / "tiny.safetensors")
    names = FrameFoldCheckpointLoader.INPUT_TYPES()["required"]["ckpt_name"][0]
    assert "tiny.safetensors" in names
    model, text_encoder, vae = FrameFoldCheckpointLoader().load("tiny.safetensors", "auto")
    assert model.frame_window == 8 and vae.config == TINY_VAE
    (cond,) = FrameFoldTextEncode().encode("a (red:1.2) cat", text_encoder)["result"]
    assert torch.equal(cond.embeds, text.encode("a (red:1.2) cat").embeds)
    (cond2,) = FrameFoldTextEncode().encode("a cat", text_encoder, clip_skip=2)["result"]
    assert cond2.embeds.shape == (1, 77, 16)
    with pytest.raises(NodeInputError, match="clip_skip"):
        FrameFoldTextEncode().encode("a cat", text_encoder, clip_skip=3)
    with pytest.raises(NodeInputError, match="FrameFoldCheckpointLoader: input 'ckpt_name'.*not found"):
        FrameFoldCheckpointLoader().load("missing.safetensors", "auto")


def test_loaders_refuse_wrong_files(folders):
    mm = {"down_blocks.0.motion_modules.0.temporal_transformer.norm.weight": torch.ones(8)}
    write_safetensors(folders / "models" / "checkpoints" / "mm.safetensors", mm)
    with pytest.raises(NodeInputError, match="input 'ckpt_name'.*motion module.*FrameFold Load Motion Module"):
        FrameFoldCheckpointLoader().load("mm.safetensors", "auto")
    vae_dir = folders / "models" / "vae"
    save_vae(vae_dir / "v.safetensors", _vae())
    (vae,) = FrameFoldVAELoader().load("v.safetensors", "fp32")
    assert vae.config == TINY_VAE
    write_safetensors(vae_dir / "no_config.safetensors", _vae().model.state_dict())
    with pytest.raises(ValueError, match="GroupNorm groups cannot be read"):
        FrameFoldVAELoader().load("no_config.safetensors", "fp32")
    (vae_dir / "broken.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(NodeInputError, match="input 'vae_name'.*broken.safetensors"):
        FrameFoldVAELoader().load("broken.safetensors", "auto")


def test_one_resolver_reads_folder_annotations_and_refuses_escapes(folders):
    from framefold.nodes._io_files import io_file_verdict, resolve_io_file

    (folders / "output" / "sub").mkdir(parents=True)
    (folders / "output" / "sub" / "a.latent").write_bytes(b"x")
    assert (
        resolve_io_file("N", "latent", "sub/a.latent [output]", ".latent file")
        == folders / "output" / "sub" / "a.latent"
    )
    for name, message in (("../a.latent [output]", "inside the output folder"), ("sub/a.latent", "an existing")):
        with pytest.raises(NodeInputError, match=f"N: input 'latent': .*{message}"):
            resolve_io_file("N", "latent", name, ".latent file")
    assert "a video file inside the output folder" in io_file_verdict(
        "N", "video", "/etc/passwd [output]", "video file"
    )


def test_image_size_policy_fits_sides_to_the_vae_downscale(folders):
    from framefold.pipelines.latents import fit_to_multiple

    images = torch.rand(2, 10, 13, 3)
    cropped = fit_to_multiple(images, 4, "crop")
    assert torch.equal(cropped, images[:, 1:9, 0:12])  # centred, like ComfyUI's vae_encode_crop_pixels
    padded = fit_to_multiple(images, 4, "pad")
    assert padded.shape == (2, 12, 16, 3)
    assert torch.equal(padded[:, 1:11, 1:14], images)  # centred
    assert torch.equal(padded[:, 0], padded[:, 1]) and torch.equal(padded[:, :, -1], padded[:, :, -3])
    resized = fit_to_multiple(images, 4, "resize")
    assert resized.shape == (2, 12, 12, 3) and 0 <= resized.min() and resized.max() <= 1
    even = torch.rand(1, 8, 8, 3)
    assert fit_to_multiple(even, 4, "pad") is even
    with pytest.raises(ValueError, match="images.*at least 8x8"):
        fit_to_multiple(torch.rand(1, 5, 9, 3), 8, "crop")

    vae = _vae()
    (enc,) = FrameFoldVAEEncode().encode(images, vae)  # default: crop
    assert vae.downscale == 2 and enc["samples"].shape == (2, 4, 5, 6)
    (enc_pad,) = FrameFoldVAEEncode().encode(images, vae, size_policy="pad")
    assert enc_pad["samples"].shape == (2, 4, 5, 7)
    with pytest.raises(NodeInputError, match="FrameFoldVAEEncode: input 'size_policy'"):
        FrameFoldVAEEncode().encode(images, vae, size_policy="stretch")
    tooltip = FrameFoldVAEEncode.INPUT_TYPES()["optional"]["size_policy"][1]["tooltip"]
    assert "crop (default" in tooltip
