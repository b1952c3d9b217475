"""RIFE 4.7 IFNet: exact key coverage of the release, loader errors, and the architecture's invariants."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from framefold.pipelines.interpolation import driver, interpolate, timing
from framefold.pipelines.interpolation.ifnet import (
    IFNet,
    IFNetConfig,
    interpolate_batch,
    pad_multiple,
    pad_to_multiple,
)
from framefold.pipelines.interpolation.rife import RifeInterpolator
from framefold.pipelines.loading.detect import RIFE, WrongLoaderError, detect_format
from framefold.pipelines.loading.files import WeightFileError
from framefold.pipelines.loading.rife import RifeVersionError, load_rife, rife_version

MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "manifests" / "rife_v4.json"
if not MANIFEST.is_file():
    MANIFEST = Path("/work/shared/fixtures/manifests/rife_v4.json")
TINY = IFNetConfig((16, 16, 8, 8), resconvs=2)


def _manifest():
    return json.loads(MANIFEST.read_text())


def _meta_state_dict(keys):
    """Tensors of the manifest's shapes on the meta device (shapes only, no memory)."""
    return {k: torch.empty(shape, device="meta") for k, shape in keys.items()}


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    model = IFNet(TINY).eval()
    with torch.no_grad():  # non-trivial betas and biases, so the invariants are not met by accident
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def test_ifnet_matches_the_release_keys_and_shapes_exactly():
    manifest = _manifest()
    with torch.device("meta"):
        model = IFNet()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == manifest["keys"]
    assert sum(v.numel() for v in model.state_dict().values()) == manifest["param_count"]
    assert rife_version(model.state_dict()) == "4.7"


@pytest.mark.parametrize("version, family", [("4.0", "4.0-4.3"), ("4.17", "4.10-4.18"), ("4.26", "4.20+")])
def test_other_release_versions_are_recognised(version, family):
    keys = _manifest()["other_arch_versions"][version]["keys"]
    state_dict = _meta_state_dict(keys)
    assert detect_format(state_dict) == RIFE
    assert rife_version(state_dict) == family


def _save(path, state_dict, prefix=""):
    tensors = {prefix + k: v.contiguous() for k, v in state_dict.items()}
    if path.suffix == ".safetensors":
        save_file(tensors, str(path))
    else:
        torch.save(tensors, str(path))
    return path


def test_release_sized_file_loads_with_exact_weights(tmp_path):
    model = IFNet()
    path = _save(tmp_path / "rife47.pth", model.state_dict())
    loaded = load_rife(path)
    assert loaded.config == IFNetConfig()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


@pytest.mark.parametrize("name", ["flownet.pth", "flownet.pkl"])
def test_module_prefix_of_practical_rife_is_removed(tmp_path, name):
    model = _tiny_model()
    loaded = load_rife(_save(tmp_path / name, model.state_dict(), prefix="module."))
    frames = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded(frames[0], frames[1]), model(frames[0], frames[1]))


def test_truncated_file_is_a_clear_error(tmp_path):
    path = _save(tmp_path / "rife47.safetensors", _tiny_model().state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightFileError, match="truncated"):
        load_rife(path)
    pth = _save(tmp_path / "rife47.pth", _tiny_model().state_dict())
    pth.write_bytes(pth.read_bytes()[:1000])
    with pytest.raises(WeightFileError, match="rife47.pth"):
        load_rife(pth)


def test_missing_keys_are_a_clear_error(tmp_path):
    state_dict = _tiny_model().state_dict()
    del state_dict["block2.convblock.1.beta"]
    with pytest.raises(WeightFileError, match=r"1 missing \(e.g. block2.convblock.1.beta\)"):
        load_rife(_save(tmp_path / "partial.safetensors", state_dict))


def test_wrong_version_file_is_refused_by_name(tmp_path):
    keys = _manifest()["other_arch_versions"]["4.17"]["keys"]
    state_dict = {k: torch.zeros(shape) for k, shape in keys.items()}
    with pytest.raises(RifeVersionError, match=r"rife417.pth is a RIFE 4.10-4.18 file.*RIFE 4.7"):
        load_rife(_save(tmp_path / "rife417.pth", state_dict))


def test_rife_file_given_to_other_loaders_names_the_rife_loader(tmp_path):
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.vae import load_vae

    path = _save(tmp_path / "rife47.safetensors", _tiny_model().state_dict())
    for loader in (load_checkpoint, load_vae):
        with pytest.raises(WrongLoaderError, match="RIFE frame-interpolation model.*Load Frame Interpolation Model"):
            loader(path)


def test_other_files_given_to_the_rife_loader_name_their_loader(tmp_path):
    from framefold.nodes._folders import resolve_model

    motion = resolve_model("animatediff_models", "framefold-tiny-motion.safetensors")
    with pytest.raises(WrongLoaderError, match="motion module.*Load Motion Module"):
        load_rife(motion)
    unknown = _save(tmp_path / "random.safetensors", {"weight": torch.zeros(3)})
    with pytest.raises(WrongLoaderError, match="match no known format"):
        load_rife(unknown)


def test_pad_multiples_follow_the_scale():
    assert [pad_multiple(s) for s in (4.0, 2.0, 1.0, 0.5, 0.25)] == [32, 32, 32, 64, 128]
    padded, size = pad_to_multiple(torch.ones(1, 3, 40, 70), 32)
    assert padded.shape == (1, 3, 64, 96) and size == (40, 70)
    assert padded[..., 40:, :].abs().sum() == 0 and padded[..., :, 70:].abs().sum() == 0


@pytest.mark.parametrize("scale", [1.0, 0.5, 2.0])
def test_any_size_is_padded_and_cropped_back(scale):
    model = _tiny_model()
    a, b = torch.rand(2, 1, 3, 40, 70, generator=torch.Generator().manual_seed(1))
    out = interpolate_batch(model, a, b, [0.25, 0.5], scale=scale)
    assert out.shape == (2, 3, 40, 70) and torch.isfinite(out).all()


def test_ensemble_is_exactly_symmetric_in_time():
    model = _tiny_model(2)
    a, b = torch.rand(2, 1, 3, 32, 64, generator=torch.Generator().manual_seed(2))
    forward = model(a, b, 0.25, ensemble=True)
    backward = model(b, a, 0.75, ensemble=True)
    assert torch.allclose(forward, backward, atol=1e-6)
    assert not torch.allclose(model(a, b, 0.25), model(b, a, 0.75), atol=1e-4)  # without ensemble it is not


def test_batched_timesteps_equal_single_calls():
    model = _tiny_model(3)
    a, b = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    batch = interpolate_batch(model, a, b, [0.2, 0.7])
    for i, t in enumerate((0.2, 0.7)):
        assert torch.allclose(batch[i : i + 1], model(a, b, t), atol=1e-6)


def test_scale_sets_the_block_resolutions():
    model = IFNet(TINY)
    assert model.scale_list(1.0) == [8.0, 4.0, 2.0, 1.0]
    assert model.scale_list(0.5) == [16.0, 8.0, 4.0, 2.0]


@pytest.mark.parametrize("m", [2, 4])
def test_rife_keeps_frame_count_and_exact_ends(m):
    keys = torch.rand(4, 40, 48, 3, generator=torch.Generator().manual_seed(4))
    out, fps = interpolate(keys, RifeInterpolator(_tiny_model()), multiplier=m, fps=8.0)
    assert out.shape == ((4 - 1) * m + 1, 40, 48, 3) and fps == 8.0 * m
    assert torch.equal(out[::m], keys)


def test_shipped_tiny_rife_beats_linear_blend_end_to_end():
    """The in-project IFNet (default_model/frame_interpolation) loads like a release and interpolates for real."""
    from framefold.nodes._folders import resolve_model
    from framefold.pipelines import synthetic
    from framefold.pipelines.metrics.quality import psnr

    model = load_rife(resolve_model("frame_interpolation", "framefold-tiny-rife.safetensors"))
    assert rife_version(model.state_dict()) == "4.7"
    scene = synthetic.layout_scene("green", "circle", "down", "black", 11, frames=17)
    clip = torch.from_numpy(synthetic.render_scene(scene))
    keys = clip[::2]
    positions = timing.multiplier_positions(keys.shape[0], 2)
    by_rife = driver.interpolate_frames(keys, positions, RifeInterpolator(model))
    by_blend = driver.interpolate_frames(keys, positions, driver.blend_between)
    assert psnr(by_rife[1::2], clip[1::2]) > psnr(by_blend[1::2], clip[1::2]) + 1.0
