"""Training the default model: a micro config learns, and its export loads through the normal loaders."""
import numpy as np
import pytest
import torch

from framefold.pipelines import synthetic, training


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
        return training.diffusion_step(micro, latents, captions, 16, abar, torch.Generator().manual_seed(3),
                                       use_motion=True)[0]

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
    from framefold.pipelines.loading.motion_keys import load_motion_module

    training.set_scaling_factor(micro, 2.5)
    ckpt, mm_path = tmp_path / "ckpt.safetensors", tmp_path / "mm.safetensors"
    training.export_model(micro, ckpt, mm_path)
    sd, meta = read_state_dict(ckpt)
    assert {k.split(".")[0] for k in sd} == {"model", "first_stage_model", "cond_stage_model"}
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model."))
               for k in sd)
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
        assert torch.allclose(text_encoder.encode("a red circle moving left on a black background").embeds,
                              context, atol=1e-5)
        ref = micro.animated(x, t, context.expand(16, -1, -1), num_frames=16)
        out = animated(x, t, context.expand(16, -1, -1), num_frames=16)
        assert torch.allclose(out, ref, atol=1e-5)
        assert vae.config.scaling_factor == 2.5
        assert torch.allclose(vae.model.decode(x[:2]), micro.vae.decode(x[:2]), atol=1e-5)
