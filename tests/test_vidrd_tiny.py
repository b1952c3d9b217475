"""Tiny models for the VidRD / image-to-video / FreeInit tests (imported by tests/test_vidrd_*.py, test_i2v_*.py)."""

import torch
from einops import rearrange

from framefold.pipelines.models.bundle import Conditioning, DiffusionModel, ScheduleConfig


class MixingUNet(torch.nn.Module):
    """A deterministic stand-in honouring the UNet contract, with temporal mixing so frames influence each other.

    Refuses more than ``frame_window`` frames in one call, like a motion module with a fixed PE length, and
    records the largest call so tests can check clip sizes.
    """

    def __init__(self, channels=4, ctx_dim=8, seed=0, frame_window=16):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.proj = torch.nn.Linear(ctx_dim, channels)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.frame_window = frame_window
        self.max_frames_seen = 0

    def forward(self, x, timesteps, context, *, num_frames, control=None, **options):
        """Model output shaped like x; frames are mixed through their mean."""
        if num_frames > self.frame_window:
            raise ValueError(f"{num_frames} frames > frame window {self.frame_window}")
        self.max_frames_seen = max(self.max_frames_seen, num_frames)
        temb = torch.sin(timesteps[:, None].float() / 300.0)[:, :, None, None]
        text = self.proj(context.mean(1))[:, :, None, None]
        h = 0.9 * x + 0.2 * torch.tanh(self.conv(x)) + 0.1 * temb + 0.1 * text
        video = rearrange(h, "(b f) c h w -> b f c h w", f=num_frames)
        video = video + 0.2 * torch.tanh(video.mean(dim=1, keepdim=True))
        return rearrange(video, "b f c h w -> (b f) c h w")


def mixing_model(seed=0, frame_window=16):
    """A DiffusionModel around MixingUNet with SD's schedule."""
    return DiffusionModel(
        unet=MixingUNet(seed=seed, frame_window=frame_window), schedule=ScheduleConfig(), frame_window=frame_window
    )


def cond(seed, frames=1, length=4, dim=8):
    """A random Conditioning [frames, length, dim]."""
    g = torch.Generator().manual_seed(seed)
    return Conditioning(torch.randn(frames, length, dim, generator=g), prompt=f"p{seed}")


def test_mixing_unet_mixes_frames_and_enforces_window():
    model = mixing_model(frame_window=4)
    x = torch.randn(4, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    ctx = cond(1).embeds.expand(4, -1, -1)
    out = model(x, torch.full((4,), 500.0), ctx, num_frames=4)
    x2 = x.clone()
    x2[3] += 1.0
    out2 = model(x2, torch.full((4,), 500.0), ctx, num_frames=4)
    assert not torch.allclose(out[0], out2[0])  # frame 3 influenced frame 0
    try:
        model(torch.randn(5, 4, 3, 3), torch.full((5,), 1.0), cond(1).embeds.expand(5, -1, -1), num_frames=5)
    except ValueError:
        pass
    else:
        raise AssertionError("a call over the frame window must fail")
