"""Sampler, context-options and noise-prior nodes: wiring, widget order, tooltips, errors."""

import pytest
import torch
from test_sampling_tinymodel import tiny_cond, tiny_model

from framefold.nodes._errors import NodeInputError
from framefold.nodes.noise import FrameFoldNoisePrior
from framefold.nodes.sampling import FrameFoldContextOptions, FrameFoldVideoSampler
from framefold.pipelines import progress
from framefold.pipelines.models.bundle import Conditioning
from framefold.pipelines.sampling.context import ContextOptions

NODES = (FrameFoldVideoSampler, FrameFoldContextOptions, FrameFoldNoisePrior)


def test_input_order_is_stable_and_every_input_has_a_tooltip():
    order = {
        FrameFoldVideoSampler: [
            "model",
            "positive",
            "negative",
            "latent",
            "seed",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "denoise",
            "noise",
            "context",
        ],
        FrameFoldContextOptions: ["context_length", "context_overlap", "context_stride", "closed_loop", "fuse_method"],
        FrameFoldNoisePrior: [
            "method",
            "videofusion_lambda",
            "base_frame",
            "alpha",
            "window",
            "stride",
            "delta_x",
            "delta_y",
            "prompt_frames",
        ],
    }
    for cls in NODES:
        spec = cls.INPUT_TYPES()
        names = list(spec["required"]) + list(spec.get("optional", {}))
        assert names == order[cls]
        for section in spec.values():
            for name, (_kind, options) in section.items():
                assert options.get("tooltip"), f"{cls.__name__}.{name} has no tooltip"
        assert cls.CATEGORY.startswith("FrameFold/") and cls.DESCRIPTION


def _run(seed=0, frames=4, **overrides):
    model = overrides.pop("model", tiny_model())
    args = dict(
        model=model,
        positive=tiny_cond(1),
        negative=tiny_cond(2),
        latent={"samples": torch.zeros(frames, 4, 6, 6)},
        seed=seed,
        steps=4,
        cfg=3.0,
        sampler_name="euler_ancestral",
        scheduler="trailing",
        denoise=1.0,
    )
    args.update(overrides)
    return FrameFoldVideoSampler().sample(**args)[0]["samples"]


def test_sampler_node_is_deterministic_per_seed():
    a = _run(seed=1)
    assert a.shape == (4, 4, 6, 6) and a.dtype == torch.float32
    assert torch.equal(a, _run(seed=1))
    assert not torch.allclose(a, _run(seed=2))


def test_sampler_node_uses_the_noise_prior():
    model = tiny_model(temporal=0.0)  # frames independent: identical noise -> identical frames
    shared = FrameFoldNoisePrior().build("videofusion", videofusion_lambda=1.0)[0]
    out = _run(model=model, noise=shared, sampler_name="dpmpp_2m")
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))
    iid = _run(model=model, sampler_name="dpmpp_2m")
    assert not torch.allclose(iid[0], iid[1])


def test_sampler_node_denoise_and_context():
    source = torch.randn(6, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    low = _run(frames=6, latent={"samples": source}, denoise=0.2, sampler_name="ddim")
    high = _run(frames=6, latent={"samples": source}, denoise=0.9, sampler_name="ddim")
    assert (low - source).abs().mean() < (high - source).abs().mean()
    model = tiny_model()
    ctx = FrameFoldContextOptions().build(4, 1, 1, False, "pyramid")[0]
    assert ctx == ContextOptions(4, 1, 1, False, "pyramid")
    model.unet.seen_batches.clear()
    out = _run(model=model, frames=10, context=ctx)
    assert out.shape[0] == 10 and max(model.unet.seen_batches) == 8


def test_sampler_node_reports_progress_and_stops_between_steps():
    steps = []
    with progress.use_sink(progress.ProgressSink(lambda s, n, p: steps.append((s, n)))):
        _run()
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with progress.use_sink(progress.ProgressSink(should_stop=lambda: True)), pytest.raises(progress.Interrupted):
        _run()


@pytest.mark.parametrize(
    "override,input_name",
    [
        ({"latent": {"samples": torch.zeros(4, 6, 6)}}, "latent"),
        ({"positive": Conditioning(torch.zeros(3, 4, 8))}, "positive"),
        ({"denoise": 0.0}, "denoise"),
        ({"sampler_name": "heun"}, "sampler_name"),
        ({"scheduler": "lcm", "steps": 60}, "steps"),
        ({"noise": "iid"}, "noise"),
        ({"model": "sd15"}, "model"),
    ],
)
def test_sampler_node_errors_name_the_input(override, input_name):
    with pytest.raises(NodeInputError) as info:
        _run(**override)
    assert info.value.input_name == input_name and info.value.node_class == "FrameFoldVideoSampler"


def test_option_nodes_validate():
    with pytest.raises(NodeInputError, match="context_overlap"):
        FrameFoldContextOptions().build(8, 8)
    with pytest.raises(NodeInputError, match="alpha"):
        FrameFoldNoisePrior().build("pyoco_mixed", alpha=-1.0)
    fnr = FrameFoldNoisePrior().build("vidrd_fnr")[0]
    pns = FrameFoldNoisePrior().build("vidrd_pns", alpha=2.0, prompt_frames=3)[0]
    assert fnr.method == pns.method == "vidrd" and fnr.alpha is None and pns.alpha == 2.0
    base = FrameFoldNoisePrior().build("videofusion", base_frame=2)[0]
    assert base.base_frame == 2 and FrameFoldNoisePrior().build("videofusion")[0].base_frame is None


def test_sampler_node_with_the_real_temporal_unet_and_motion_module():
    from framefold.pipelines.models.bundle import DiffusionModel
    from framefold.pipelines.models.motion import MotionModule, MotionModuleConfig
    from framefold.pipelines.models.unet import UNetConfig, UNetModel

    torch.manual_seed(0)
    unet = UNetModel(
        UNetConfig(
            model_channels=32, channel_mult=(1,), num_res_blocks=1, attention_levels=(0,), num_heads=2, context_dim=16
        )
    )
    motion = MotionModule(MotionModuleConfig(block_channels=(32,), layers_per_block=1, pe_length=4, num_heads=2))
    model = DiffusionModel(unet=unet.with_motion(motion), frame_window=4)
    pos, neg = Conditioning(torch.randn(1, 77, 16)), Conditioning(torch.zeros(1, 77, 16))
    args = dict(
        model=model,
        positive=pos,
        negative=neg,
        seed=3,
        steps=2,
        cfg=5.0,
        sampler_name="euler",
        scheduler="trailing",
        denoise=1.0,
    )
    four = {"samples": torch.zeros(4, 4, 8, 8)}
    plain = FrameFoldVideoSampler().sample(latent=four, **args)[0]["samples"]
    one_window = FrameFoldVideoSampler().sample(latent=four, context=ContextOptions(4, 1), **args)[0]["samples"]
    assert torch.equal(plain, one_window) and torch.isfinite(plain).all()
    six = {"samples": torch.zeros(6, 4, 8, 8)}
    out = FrameFoldVideoSampler().sample(latent=six, context=ContextOptions(4, 2), **args)[0]["samples"]
    assert out.shape == (6, 4, 8, 8) and torch.isfinite(out).all()
    with pytest.raises(NodeInputError, match="at most 4 frames"):
        FrameFoldVideoSampler().sample(latent=six, **args)


def test_out_of_memory_during_sampling_names_node_and_step_and_saves_the_latents(tmp_path, monkeypatch):
    """An allocator failure after the pre-flight: the error names the node and the step, the last state is saved."""
    from framefold.nodes import _folders
    from framefold.pipelines.loading.files import load_latent_file

    _folders.set_io_dirs(output=tmp_path / "output", input=tmp_path / "input")
    model = tiny_model()
    unet_forward = model.unet.forward
    calls = {"n": 0}

    def failing_forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third model call: sampler step 3 of 4 (cfg batches cond and uncond in one call)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return unet_forward(*args, **kwargs)

    monkeypatch.setattr(model.unet, "forward", failing_forward)
    try:
        with pytest.raises(RuntimeError, match=r"FrameFoldVideoSampler: out of memory at sampler step 3 of 4") as info:
            _run(model=model)
    finally:
        _folders.set_io_dirs(output=None, input=None)
    saved = sorted((tmp_path / "output" / "latents").glob("FrameFold_sampling_oom_*_.latent"))
    assert len(saved) == 1 and str(saved[0]) in str(info.value)
    latents = load_latent_file(saved[0])
    assert latents.shape == (4, 4, 6, 6) and torch.isfinite(latents).all()


def test_other_runtime_errors_during_sampling_are_not_taken_for_out_of_memory(monkeypatch):
    model = tiny_model()

    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch in a layer")

    monkeypatch.setattr(model.unet, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch in a layer"):
        _run(model=model)
