"""Training the default model: a micro config learns, and its export loads through the normal loaders."""

import numpy as np
import pytest
import torch

from framefold.pipelines import synthetic
from framefold.training import steps as training


@pytest.fixture(scope="module")
def micro():
    torch.manual_seed(0)
    return training.TinyModel(training.micro_config())


def test_step_randomness_is_a_function_of_seed_stage_and_step():
    a = training.step_rng(0, "video", 5).random(3)
    assert np.array_equal(a, training.step_rng(0, "video", 5).random(3))
    assert not np.array_equal(a, training.step_rng(0, "video", 6).random(3))
    assert not np.array_equal(a, training.step_rng(0, "image", 5).random(3))
    g1, g2 = training.step_generator(1, "vae", 2), training.step_generator(1, "vae", 2)
    assert torch.equal(torch.randn(4, generator=g1), torch.randn(4, generator=g2))


def test_caption_dropout_rate():
    rng = np.random.default_rng(0)
    out = training.caption_dropout(["x"] * 2000, rng, 0.1)
    assert 150 < out.count("") < 250


def test_vae_steps_lower_the_loss(micro):
    torch.manual_seed(0)
    pixels = training.vae_batch(np.random.default_rng(0), 8, 32)
    opt = torch.optim.AdamW(micro.vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, parts = training.vae_step(micro, pixels, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(parts) == {"l1", "mse", "kl"}
    assert losses[-1] < 0.7 * losses[0]


def test_diffusion_steps_lower_the_loss_on_a_fixed_batch(micro):
    torch.manual_seed(0)
    videos, captions, _ = synthetic.random_batch(np.random.default_rng(1), 1)
    videos = videos[:, :16]
    latents = training.encode_latents(micro, videos, torch.Generator().manual_seed(0))
    abar = training.alphas_cumprod(micro.config.schedule)
    opt = torch.optim.AdamW(micro.denoiser_parameters(), lr=2e-3)

    def loss_now():
        return training.diffusion_step(
            micro, latents, captions, 16, abar, torch.Generator().manual_seed(3), use_motion=True
        )[0]

    first = None
    for _ in range(10):
        loss = loss_now()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert loss_now().item() < 0.8 * first


def test_ema_moves_toward_the_parameters():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = training.EMA([p], decay=0.9)
    with torch.no_grad():
        p.fill_(1.0)
    for _ in range(50):
        ema.update()
    assert torch.allclose(ema.shadow[0], torch.ones(3), atol=1e-3)
    state = ema.state_dict()
    other = training.EMA([torch.nn.Parameter(torch.zeros(3))])
    other.load_state_dict(state)
    assert torch.equal(other.shadow[0], ema.shadow[0]) and other.updates == 50


def test_export_loads_through_the_normal_loaders(micro, tmp_path):
    from framefold.pipelines.loading.checkpoint import load_checkpoint
    from framefold.pipelines.loading.files import read_state_dict
    from framefold.pipelines.loading.motion import load_motion_module

    training.set_scaling_factor(micro, 2.5)
    ckpt, mm_path = tmp_path / "ckpt.safetensors", tmp_path / "mm.safetensors"
    training.export_model(micro, ckpt, mm_path)
    sd, meta = read_state_dict(ckpt)
    assert {k.split(".")[0] for k in sd} == {"model", "first_stage_model", "cond_stage_model"}
    assert all(
        k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model."))
        for k in sd
    )
    import json

    ff = json.loads(meta["framefold"])
    assert ff["tokenizer"]["type"] == "word" and ff["tokenizer"]["vocab"] == micro.tokenizer.vocab
    assert ff["frame_window"] == 16 and ff["vae"]["scaling_factor"] == 2.5

    model, text_encoder, vae = load_checkpoint(ckpt)
    motion = load_motion_module(mm_path)
    animated = model.unet.with_motion(motion)
    x = torch.randn(16, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.full((16,), 500)
    ids = micro.token_ids(["a red circle moving left on a black background"])
    with torch.no_grad():
        context = micro.text(ids)
        assert torch.allclose(
            text_encoder.encode("a red circle moving left on a black background").embeds, context, atol=1e-5
        )
        ref = micro.animated(x, t, context.expand(16, -1, -1), num_frames=16)
        out = animated(x, t, context.expand(16, -1, -1), num_frames=16)
        assert torch.allclose(out, ref, atol=1e-5)
        assert vae.config.scaling_factor == 2.5
        assert torch.allclose(vae.model.decode(x[:2]), micro.vae.decode(x[:2]), atol=1e-5)


def test_high_noise_fraction_draws_that_share_from_the_top_timesteps():
    g = torch.Generator().manual_seed(0)
    plain = training.sample_timesteps(20000, 1000, g)
    assert plain.min() >= 0 and plain.max() <= 999
    assert abs((plain >= 900).float().mean().item() - 0.1) < 0.01
    t = training.sample_timesteps(20000, 1000, torch.Generator().manual_seed(0), 0.3, 900)
    # 30% from [900, 1000) plus 10% of the other 70% that land there uniformly
    assert abs((t >= 900).float().mean().item() - (0.3 + 0.7 * 0.1)) < 0.015
    assert t.min() >= 0 and t.max() <= 999


def test_still_captions_name_no_motion_and_parse_back():
    rng = np.random.default_rng(4)
    for _ in range(20):
        scene = synthetic.random_scene(rng)
        parsed = synthetic.GRAMMAR.parse(training.still_caption(scene))
        assert parsed == {"colour": scene.colour, "shape": scene.shape, "motion": None, "background": scene.background}


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_diffusion_target_matches_the_schedule(prediction):
    from framefold.pipelines.models.bundle import ScheduleConfig

    config = training.micro_config()
    config.schedule = ScheduleConfig(prediction_type=prediction, zero_terminal_snr=prediction == "v_prediction")
    torch.manual_seed(0)
    model = training.TinyModel(config)
    latents = torch.randn(16, 4, 16, 16)
    abar = training.alphas_cumprod(config.schedule)
    # a network that outputs exactly the right target has zero loss: build it from the same draws
    g = torch.Generator().manual_seed(5)
    t = training.sample_timesteps(1, abar.shape[0], g)
    noise = torch.randn(latents.shape, generator=g)
    a = abar[t].repeat_interleave(16)[:, None, None, None]
    target = noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * latents

    class Oracle(torch.nn.Module):
        def forward(self, x, timesteps, context, num_frames):
            return target

    model.animated = Oracle()
    loss, _ = training.diffusion_step(
        model,
        latents,
        ["a red circle moving left on a black background"],
        16,
        abar,
        torch.Generator().manual_seed(5),
        use_motion=True,
        offset_noise=0.0,
    )
    assert loss.item() < 1e-10


def test_deep_config_builds_a_three_level_animated_unet():
    torch.manual_seed(0)
    model = training.TinyModel(training.deep_config())
    assert len(model.unet.config.channel_mult) == 3 and len(model.motion.config.block_channels) == 3
    x = torch.randn(4, 4, 16, 16)
    context = model.text(model.token_ids(["a red circle moving left on a black background"])).expand(4, -1, -1)
    with torch.no_grad():
        assert model.animated(x, torch.full((4,), 500), context, num_frames=4).shape == x.shape


def _training_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "train_default_model.py"
    spec = importlib.util.spec_from_file_location("train_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_script_runs_resumes_and_starts_from_earlier_runs(tmp_path, capsys):
    import json

    from framefold.pipelines.loading.checkpoint import load_checkpoint

    script = _training_script()
    tiny = [
        "--micro",
        "--threads",
        "1",
        "--vae-steps",
        "2",
        "--image-steps",
        "2",
        "--video-steps",
        "2",
        "--vae-batch",
        "4",
        "--image-batch",
        "4",
        "--video-batch",
        "1",
        "--log-every",
        "1",
    ]

    def events(*args):
        capsys.readouterr()
        assert script.main(tiny + list(args)) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    first = events("--state", str(tmp_path / "a.pt"), "--out", str(tmp_path / "a"))
    assert [e["stage"] for e in first if e.get("event") == "stage_done"] == ["vae", "image", "video"]
    assert events("--state", str(tmp_path / "a.pt"), "--out", str(tmp_path / "a"))[0]["event"] == "resumed"

    tuned = events(
        "--state",
        str(tmp_path / "b.pt"),
        "--out",
        str(tmp_path / "b"),
        "--finetune-from",
        str(tmp_path / "a.pt"),
        "--reset-text-encoder",
        "--prediction",
        "v_prediction",
        "--zero-terminal-snr",
        "--offset-noise",
        "0",
        "--high-noise-fraction",
        "0.3",
    )
    assert [e["stage"] for e in tuned if e.get("event") == "stage_done"] == ["video"]
    model, _, _ = load_checkpoint(tmp_path / "b" / "checkpoints" / "framefold-tiny.safetensors")
    assert model.schedule.prediction_type == "v_prediction" and model.schedule.zero_terminal_snr

    # a fine-tune can start from shipped files (a model folder) and take paired-shape steps
    shipped = training.TinyModel(training.micro_config())
    shipped.config.schedule = model.schedule
    training.load_exported_model(shipped, tmp_path / "b")
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in shipped.unet.state_dict().items())
    from_folder = events(
        "--state",
        str(tmp_path / "d.pt"),
        "--out",
        str(tmp_path / "d"),
        "--finetune-from",
        str(tmp_path / "b"),
        "--prediction",
        "v_prediction",
        "--zero-terminal-snr",
        "--shape-pairs-every",
        "1",
        "--shape-pair-layouts",
        "1",
    )
    assert [e["stage"] for e in from_folder if e.get("event") == "stage_done"] == ["video"]
    with pytest.raises(ValueError, match="v_prediction"):
        training.load_exported_model(training.TinyModel(training.micro_config()), tmp_path / "b")

    from_vae = events(
        "--state",
        str(tmp_path / "c.pt"),
        "--out",
        str(tmp_path / "c"),
        "--vae-from",
        str(tmp_path / "a.pt"),
        "--still-captions",
    )
    assert [e["stage"] for e in from_vae if e.get("event") == "stage_done"] == ["image", "video"]
    a = torch.load(tmp_path / "a.pt", weights_only=True)["model"]
    c = torch.load(tmp_path / "c.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], c[k]) for k in a if k.startswith("vae."))


def test_scene_labels_group_clips_of_the_same_caption():
    rng = np.random.default_rng(0)
    a = synthetic.layout_scene("red", "circle", "left", "black", rng, template=0)
    b = synthetic.layout_scene("red", "circle", "left", "black", rng, template=1)
    c = synthetic.layout_scene("red", "circle", "right", "black", rng)
    labels = training.scene_labels([a, b, c, a])
    assert labels[0] == labels[1] == labels[3] and labels[0] != labels[2]


def test_text_alignment_steps_lower_the_loss(micro):
    torch.manual_seed(0)
    aligner = training.TextVideoAligner(micro.text.config.hidden_size)
    videos, _, scenes = synthetic.random_batch(np.random.default_rng(0), 12)
    params = list(micro.text.parameters()) + list(aligner.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    losses = []
    for _ in range(80):
        loss, parts = training.text_alignment_step(micro, aligner, videos, scenes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(parts) == {"acc"} and 0.0 <= parts["acc"] <= 1.0
    assert losses[0] > 2.0 and losses[-1] < 0.6 * losses[0], losses[::10]


def test_same_caption_clips_are_not_negatives(micro):
    aligner = training.TextVideoAligner(micro.text.config.hidden_size)
    rng = np.random.default_rng(0)
    scene = synthetic.layout_scene("red", "circle", "left", "black", rng)
    twins = [scene, synthetic.layout_scene("red", "circle", "left", "black", rng)]
    videos = np.stack([synthetic.render_scene(s) for s in twins])
    with torch.no_grad():
        loss, parts = training.text_alignment_step(micro, aligner, videos, twins)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and parts["acc"] == 1.0


def test_training_script_text_stage_then_frozen_text_encoder(tmp_path, capsys):
    import json

    script = _training_script()
    tiny = [
        "--micro",
        "--threads",
        "1",
        "--vae-steps",
        "2",
        "--text-steps",
        "2",
        "--image-steps",
        "2",
        "--video-steps",
        "2",
        "--vae-batch",
        "4",
        "--text-batch",
        "4",
        "--image-batch",
        "4",
        "--video-batch",
        "1",
        "--log-every",
        "1",
    ]

    def events(*args):
        capsys.readouterr()
        assert script.main(tiny + list(args)) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    run = events("--state", str(tmp_path / "d.pt"), "--out", str(tmp_path / "d"), "--text-minutes", "5")
    assert [e["stage"] for e in run if e.get("event") == "stage_done"] == ["vae", "text", "image", "video"]
    assert any(e.get("stage") == "text" and "acc" in e for e in run)
    tuned = events(
        "--state",
        str(tmp_path / "e.pt"),
        "--out",
        str(tmp_path / "e"),
        "--finetune-from",
        str(tmp_path / "d.pt"),
        "--freeze-text",
        "--prediction",
        "v_prediction",
        "--zero-terminal-snr",
        "--terminal-every",
        "2",
        "--terminal-clips",
        "2",
        "--terminal-focus",
        "red circle black",
        "--terminal-focus-steps",
        "2",
    )
    assert [e["stage"] for e in tuned if e.get("event") == "stage_done"] == ["video"]
    assert [e["step"] for e in tuned if "terminal_mse" in e] == [2]
    d = torch.load(tmp_path / "d.pt", weights_only=True)["model"]
    e = torch.load(tmp_path / "e.pt", weights_only=True)["model"]
    text_keys = [k for k in d if k.startswith("text.")]
    assert text_keys and all(torch.allclose(d[k], e[k], atol=1e-6) for k in text_keys)
    assert any(not torch.equal(d[k], e[k]) for k in d if k.startswith("unet."))
    # Terminal steps from a table of mean clips (here a small one, already beside the state file, as a
    # resumed run finds it) instead of rendering clips at each step.
    combos = [("red", "circle", "left", "black"), ("red", "circle", "right", "black")]
    torch.save(
        {"combinations": combos, "means": torch.zeros(2, 16, 4, 8, 8), "layouts": script.layout_fingerprint()},
        tmp_path / "f.terminal3.pt",
    )
    tabled = events(
        "--state",
        str(tmp_path / "f.pt"),
        "--out",
        str(tmp_path / "f"),
        "--finetune-from",
        str(tmp_path / "d.pt"),
        "--freeze-text",
        "--prediction",
        "v_prediction",
        "--zero-terminal-snr",
        "--terminal-every",
        "2",
        "--terminal-table",
        "3",
        "--terminal-batch",
        "2",
        "--video-steps",
        "4",
        "--image-every",
        "0",
        "--terminal-motion-weight",
        "left=3",
    )
    assert [e["step"] for e in tabled if "terminal_mse" in e] == [2, 4]
    assert not any(e.get("event") == "terminal_table" for e in tabled)


def test_terminal_mean_step_targets_minus_the_mean_clip_of_each_caption():
    from framefold.pipelines.models.bundle import ScheduleConfig

    config = training.micro_config()
    config.schedule = ScheduleConfig(prediction_type="v_prediction", zero_terminal_snr=True)
    model = training.TinyModel(config)
    groups, clips, frames = 2, 3, 16
    latents = torch.randn(groups * clips * frames, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    means = latents.reshape(groups, clips, frames, 4, 8, 8).mean(1).reshape(groups * frames, 4, 8, 8)
    seen = {}

    class Oracle(torch.nn.Module):
        def forward(self, x, t, context, num_frames):
            seen.update(t=t, num_frames=num_frames, context=context.shape)
            return -means

    model.animated = Oracle()
    captions = ["a red circle moving left on a black background", ""]
    loss, parts = training.terminal_mean_step(model, latents, captions, frames, torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(0.0, abs=1e-12) and "terminal_mse" in parts
    assert torch.equal(seen["t"], torch.full((groups * frames,), 999)) and seen["num_frames"] == frames
    assert seen["context"][0] == groups * frames

    class Zero(torch.nn.Module):
        def forward(self, x, t, context, num_frames):
            return torch.zeros_like(x)

    model.animated = Zero()
    loss, _ = training.terminal_mean_step(model, latents, captions, frames, torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(means.square().mean().item(), rel=1e-5)


def test_terminal_mean_step_needs_v_prediction_with_zero_terminal_snr(micro):
    with pytest.raises(ValueError, match="zero terminal SNR"):
        training.terminal_mean_step(micro, torch.zeros(16, 4, 8, 8), ["x"], 16, torch.Generator())


def test_training_script_refuses_terminal_steps_without_zero_terminal_snr(tmp_path):
    script = _training_script()
    with pytest.raises(SystemExit, match="--terminal-every needs --prediction v_prediction --zero-terminal-snr"):
        script.main(
            ["--micro", "--state", str(tmp_path / "x.pt"), "--out", str(tmp_path / "x"), "--terminal-every", "2"]
        )
    with pytest.raises(SystemExit, match="--terminal-focus wants"):
        script.main(
            [
                "--micro",
                "--state",
                str(tmp_path / "x.pt"),
                "--out",
                str(tmp_path / "x"),
                "--terminal-focus",
                "red circle moving",
            ]
        )
    with pytest.raises(SystemExit, match="--terminal-motion-weight wants MOTION=W"):
        script.main(
            [
                "--micro",
                "--state",
                str(tmp_path / "x.pt"),
                "--out",
                str(tmp_path / "x"),
                "--terminal-motion-weight",
                "spinning=2",
            ]
        )
    assert not (tmp_path / "x.pt").exists()


def test_focus_scenes_keep_colour_shape_and_background():
    script = _training_script()
    rng = np.random.default_rng(0)
    scenes = [script.focus_scene(rng, "red circle black") for _ in range(30)]
    assert {(s.colour, s.shape, s.background) for s in scenes} == {("red", "circle", "black")}
    assert len({s.motion for s in scenes}) >= 4


def _v_zero_snr_micro():
    from framefold.pipelines.models.bundle import ScheduleConfig

    config = training.micro_config()
    config.schedule = ScheduleConfig(prediction_type="v_prediction", zero_terminal_snr=True)
    torch.manual_seed(0)
    return training.TinyModel(config)


def test_terminal_mean_table_is_the_mean_encoded_clip_of_each_caption():
    model = _v_zero_snr_micro().eval()
    combos = [("red", "circle", "left", "black"), ("blue", "square", "growing", "gradient")]
    got, table = training.terminal_mean_table(model, 3, seed=5, combinations=combos, chunk=4)
    assert got == combos and table.shape[:2] == (2, 16)
    rng = np.random.default_rng(5)
    for i, combo in enumerate(combos):
        videos = np.stack([synthetic.render_scene(synthetic.layout_scene(*combo, rng)) for _ in range(3)])
        with torch.no_grad():
            mean, _ = model.vae.encode_moments(training.to_pixels(videos.reshape(-1, 64, 64, 3)))
        want = (mean * model.vae.config.scaling_factor).reshape(3, 16, *mean.shape[1:]).mean(0)
        assert torch.allclose(table[i], want, atol=1e-5)
    # The two captions' layouts move differently, so their mean clips differ.
    assert (table[0] - table[1]).abs().mean() > 1e-3


def test_terminal_table_step_regresses_each_caption_onto_its_row():
    model = _v_zero_snr_micro()
    combos = [
        ("red", "circle", "left", "black"),
        ("red", "circle", "right", "black"),
        ("cyan", "triangle", "up", "gray"),
    ]
    table = torch.randn(3, 16, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = {}

    class Oracle(torch.nn.Module):
        def forward(self, x, t, context, num_frames):
            seen.update(t=t, context=context)
            return -table[torch.as_tensor(seen["picks"])].reshape(-1, 4, 8, 8)

    model.animated = Oracle()
    seen["picks"] = np.random.default_rng(3).integers(3, size=5)
    loss, parts = training.terminal_table_step(
        model, combos, table, 5, np.random.default_rng(3), torch.Generator().manual_seed(0), cfg_dropout=0.0
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-12) and parts["terminal_mse"] == pytest.approx(0.0, abs=1e-12)
    assert torch.equal(seen["t"], torch.full((5 * 16,), 999)) and seen["context"].shape[0] == 5 * 16
    # Rows that are not the caption's give a loss: the caption decides the target.
    seen["picks"] = (np.random.default_rng(3).integers(3, size=5) + 1) % 3
    loss, _ = training.terminal_table_step(
        model, combos, table, 5, np.random.default_rng(3), torch.Generator().manual_seed(0), cfg_dropout=0.0
    )
    assert loss.item() > 0.5
    # Weights steer the draw: here every caption is the second combination.
    seen["picks"] = [1] * 5
    loss, _ = training.terminal_table_step(
        model,
        combos,
        table,
        5,
        np.random.default_rng(3),
        torch.Generator().manual_seed(0),
        cfg_dropout=0.0,
        weights=[0, 2, 0],
    )
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def _paired_renders(seed=0):
    scene = synthetic.random_scene(np.random.default_rng(seed))
    scenes = [synthetic.with_attributes(scene, shape=shape) for shape in synthetic.SHAPES]
    return np.stack([synthetic.render_scene(s) for s in scenes])


def test_shape_difference_weight_marks_where_the_shapes_differ():
    videos = _paired_renders()
    weight = training.shape_difference_weight(videos, 4, 4.0)
    assert weight.shape == (3 * 16, 1, 16, 16)
    assert set(weight.unique().tolist()) == {1.0, 5.0}
    differs = np.abs(videos[0] - videos[1]).max(axis=-1) > 0.02  # circle vs square: the corners
    for frame in range(16):
        ys, xs = np.nonzero(differs[frame])
        assert torch.all(weight[frame, 0, ys // 4, xs // 4] == 5.0)
    # the background far from the object is never weighted up
    assert float((weight > 1).float().mean()) < 0.3
    # identical renders differ nowhere
    same = np.stack([videos[0]] * 3)
    assert torch.all(training.shape_difference_weight(same, 4, 4.0) == 1.0)


def test_shape_pair_step_shares_layout_noise_and_timestep_across_shapes(monkeypatch):
    from framefold.pipelines.models.bundle import ScheduleConfig

    config = training.micro_config()
    config.schedule = ScheduleConfig(prediction_type="v_prediction", zero_terminal_snr=True)
    torch.manual_seed(0)
    model = training.TinyModel(config)
    abar = training.alphas_cumprod(config.schedule)
    seen = {}
    encoded = []

    def fake_encode(model, videos, generator):
        # latents that say which clip they came from, so the shared noise can be recovered
        latents = torch.arange(videos.shape[0], dtype=torch.float32).repeat_interleave(16)[:, None, None, None]
        encoded.append(videos)
        return latents.expand(-1, 4, 16, 16).clone()

    class Recorder(torch.nn.Module):
        def forward(self, x, timesteps, context, num_frames):
            seen.update(x=x, t=timesteps, context=context, frames=num_frames)
            return torch.zeros_like(x, requires_grad=True)

    monkeypatch.setattr(training, "encode_latents", fake_encode)
    model.animated = Recorder()
    loss, _ = training.shape_pair_step(
        model, np.random.default_rng(3), torch.Generator().manual_seed(3), abar, layouts=2, t_from=500
    )
    assert torch.isfinite(loss)
    videos = encoded[0]  # [6, F, H, W, 3]: layout 0 as circle, square, triangle, then layout 1
    assert videos.shape[0] == 6 and seen["frames"] == 16
    for group in (videos[:3], videos[3:]):
        background = np.abs(group[0] - group[1]).max(axis=-1) < 1e-6
        assert background.mean() > 0.8  # same layout: only the object's outline differs
    t = seen["t"].reshape(6, 16)
    assert torch.all(t >= 500) and torch.all(t == t[:, :1])
    assert torch.all(t[:3] == t[0, 0]) and torch.all(t[3:] == t[3, 0])
    a = abar[t.reshape(-1)][:, None, None, None]
    latents = torch.arange(6, dtype=torch.float32).repeat_interleave(16)[:, None, None, None]
    noise = ((seen["x"] - a.sqrt() * latents) / (1 - a).sqrt()).reshape(6, 16, 4, 16, 16)
    assert torch.allclose(noise[0], noise[1], atol=1e-4) and torch.allclose(noise[0], noise[2], atol=1e-4)
    assert not torch.allclose(noise[0], noise[3], atol=1e-2)
    # each clip is captioned with its own shape
    contexts = seen["context"].reshape(6, 16, *seen["context"].shape[1:])[:, 0]
    assert not torch.allclose(contexts[0], contexts[1]) and not torch.allclose(contexts[1], contexts[2])


def test_one_frame_scene_renders_that_frame_of_the_clip():
    scene = synthetic.random_scene(np.random.default_rng(3))
    video = synthetic.render_scene(scene)
    for frame in (0, 7, 15):
        single = synthetic.render_scene(training.one_frame(scene, frame))
        assert single.shape == (1, 64, 64, 3)
        np.testing.assert_allclose(single[0], video[frame], atol=1e-6)


def test_shape_pair_step_on_single_frames_uses_the_image_unet():
    from framefold.pipelines.models.bundle import ScheduleConfig

    config = training.micro_config()
    config.schedule = ScheduleConfig(prediction_type="v_prediction", zero_terminal_snr=True)
    torch.manual_seed(0)
    model = training.TinyModel(config)
    seen = {}

    class Recorder(torch.nn.Module):
        def forward(self, x, timesteps, context, num_frames):
            seen.update(x=x, t=timesteps, frames=num_frames)
            return torch.zeros_like(x, requires_grad=True)

    model.unet = Recorder()
    abar = training.alphas_cumprod(config.schedule)
    loss, _ = training.shape_pair_step(
        model, np.random.default_rng(1), torch.Generator().manual_seed(1), abar, layouts=5, single_frames=True
    )
    assert torch.isfinite(loss) and seen["frames"] == 1 and seen["x"].shape[0] == 15
    t = seen["t"].reshape(5, 3)
    assert torch.all(t == t[:, :1]) and torch.all(t >= 200)
