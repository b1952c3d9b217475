"""A tiny deterministic UNet stand-in for the sampling tests (imported by the other test_sampling_* files)."""

import torch
from einops import rearrange

from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig


class TinyVideoUNet(torch.nn.Module):
    """Honours the UNet contract: conv + time embedding + text projection + a temporal mixing term."""

    def __init__(self, channels=4, ctx_dim=8, seed=0, temporal=0.2, skip=0.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.proj = torch.nn.Linear(ctx_dim, channels)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.freqs = torch.linspace(0.5, 3.0, channels)
        self.temporal = temporal
        self.skip = skip  # an epsilon model near the identity keeps x0 bounded, like a real noise predictor
        self.seen_batches = []

    def forward(self, x, timesteps, context, *, num_frames, control=None, **options):
        self.seen_batches.append(x.shape[0])
        temb = torch.sin(timesteps[:, None].float() / 1000.0 * self.freqs[None, :])[:, :, None, None]
        text = self.proj(context.mean(1))[:, :, None, None]
        h = self.conv(x) * 0.5 + torch.tanh(x) * 0.3 + temb * 0.2 + text * 0.2
        video = rearrange(h, "(b f) c h w -> b f c h w", f=num_frames)
        video = video + self.temporal * torch.tanh(video.mean(dim=1, keepdim=True))
        return x * self.skip + rearrange(video, "b f c h w -> (b f) c h w")


class GaussianDenoiserUNet(torch.nn.Module):
    """The optimal epsilon predictor for data ~ N(0, data_std^2) plus a small learned-looking perturbation."""

    def __init__(self, alphas_cumprod, data_std=1.0, perturb=0.05, channels=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.abar = alphas_cumprod.double()
        self.var = data_std**2
        self.perturb = perturb

    def forward(self, x, timesteps, context, *, num_frames, control=None, **options):
        t = timesteps.double().clamp(0, len(self.abar) - 1)
        low = t.floor().long().clamp(max=len(self.abar) - 2)
        abar = (self.abar[low] + (t - low) * (self.abar[low + 1] - self.abar[low])).float()[:, None, None, None]
        eps = x * (1 - abar).sqrt() / (abar * self.var + 1 - abar)
        return eps + self.perturb * torch.tanh(self.conv(x))


def tiny_model(prediction_type="epsilon", seed=0, temporal=0.2, **schedule):
    """A DiffusionModel around TinyVideoUNet."""
    skip = 0.9 if prediction_type == "epsilon" else 0.0
    return DiffusionModel(
        unet=TinyVideoUNet(seed=seed, temporal=temporal, skip=skip),
        schedule=ScheduleConfig(prediction_type=prediction_type, **schedule),
    )


def tiny_cond(seed, frames=1, length=4, dim=8):
    """A random Conditioning [frames, length, dim]."""
    g = torch.Generator().manual_seed(seed)
    return Conditioning(torch.randn(frames, length, dim, generator=g), prompt=f"p{seed}")


def test_tiny_model_keeps_shape_and_depends_on_all_inputs():
    model = tiny_model()
    x = torch.randn(6, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    ctx = tiny_cond(2).embeds.expand(6, -1, -1)
    out = model(x, torch.full((6,), 500.0), ctx, num_frames=3)
    assert out.shape == x.shape
    assert not torch.allclose(out, model(x, torch.full((6,), 100.0), ctx, num_frames=3))
    assert not torch.allclose(out, model(x, torch.full((6,), 500.0), ctx * 2, num_frames=3))
