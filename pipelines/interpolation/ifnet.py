"""IFNet of RIFE 4.7 (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation").

The released 4.7 files (``rife47.pth``, ``rife49.pth``) hold: a feature head ``encode`` (conv 3->16 stride 2,
transposed conv 16->4 stride 2, so 4 feature channels per frame at full resolution) and four ``IFBlock``\\ s,
coarse to fine, of widths 192/128/96/64. Each block sees the frames (and features) downscaled by its entry
of ``scale_list`` (8, 4, 2, 1 at scale 1), goes down 4x more with ``conv0`` (two stride-2 conv + LeakyReLU
0.2), runs 8 ``ResConv`` (``LeakyReLU(conv(x) * beta + x)``), and predicts with ``lastconv`` (transposed conv
to 24 channels + PixelShuffle 2 -> 6 channels) a flow update (4 ch: t->0 and t->1), a mask logit (1 ch) and
one unused channel, upsampled back. Block 0 reads ``img0, img1, f0, f1, t`` (3+3+4+4+1 = 15 ch); the others
read the frames and features backward-warped by the current flow, ``t`` and the mask (16 ch), plus the flow
(4 ch). The output is ``W0 * sigmoid(mask) + W1 * (1 - sigmoid(mask))``.

``ensemble`` also runs every block on the swapped pair at ``1 - t`` and averages (flows swapped back, mask
negated), which makes the result exactly symmetric: ``f(a, b, t) == f(b, a, 1 - t)``.

Widths and ResConv counts are constructor arguments so a small IFNet with the same key names can be trained
in-project (``training/train_rife.py``); :func:`ifnet_config_from_state_dict` reads them from a file.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

RELEASE_WIDTHS = (192, 128, 96, 64)
FEATURE_CHANNELS = 4
LASTCONV_CHANNELS = 24  # PixelShuffle(2) -> 6: flow (4), mask (1), one channel the release does not use
BASE_SCALES = (8.0, 4.0, 2.0, 1.0)


@dataclass(frozen=True)
class IFNetConfig:
    """Block widths (coarse to fine) and ResConv layers per block; the defaults are the 4.7 release's."""

    widths: Tuple[int, ...] = RELEASE_WIDTHS
    resconvs: int = 8


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image(x + flow(x))`` by bilinear ``grid_sample`` (align_corners, border padding), as RIFE warps.

    image ``[B, C, H, W]``, flow ``[B, 2, H, W]`` in pixels (x, y).
    """
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype).view(1, 1, w).expand(b, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype).view(1, h, 1).expand(b, h, w)
    gx = xs + flow[:, 0] / ((w - 1.0) / 2.0)
    gy = ys + flow[:, 1] / ((h - 1.0) / 2.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    """3x3 conv + LeakyReLU(0.2); keys ``<i>.0.weight/bias``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class ResConv(nn.Module):
    """``LeakyReLU(conv(x) * beta + x)`` with a learnt per-channel ``beta`` ``[1, C, 1, 1]``."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.relu = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual conv, same shape as ``x``."""
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One scale of IFNet: input ``[B, cin, H, W]`` -> (flow ``[B, 4, H, W]``, mask logit ``[B, 1, H, W]``)."""

    def __init__(self, in_channels: int, width: int, resconvs: int = 8):
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_channels, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*[ResConv(width) for _ in range(resconvs)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, LASTCONV_CHANNELS, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: Optional[torch.Tensor], scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """Run at ``1 / scale`` resolution; the flow is rescaled in size and magnitude both ways."""
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5]


def _swap(flow: torch.Tensor) -> torch.Tensor:
    """Exchange the t->0 and t->1 halves of a 4-channel flow."""
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class IFNet(nn.Module):
    """RIFE 4.7's IFNet: ``forward(img0, img1, timestep)`` -> the frame at ``timestep`` ``[B, 3, H, W]``.

    H and W must be multiples of ``32 * max(scale_list) / 8`` (see :func:`pad_multiple`).
    """

    def __init__(self, config: IFNetConfig = IFNetConfig()):
        super().__init__()
        if len(config.widths) != len(BASE_SCALES):
            raise ValueError(f"IFNet 4.7 has {len(BASE_SCALES)} blocks, got widths {config.widths}")
        self.config = config
        self.encode = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ConvTranspose2d(16, FEATURE_CHANNELS, 4, 2, 1))
        first_in = 3 + 3 + 2 * FEATURE_CHANNELS + 1
        later_in = 3 + 3 + 2 * FEATURE_CHANNELS + 1 + 1 + 4
        for i, width in enumerate(config.widths):
            setattr(self, f"block{i}", IFBlock(first_in if i == 0 else later_in, width, config.resconvs))

    @property
    def blocks(self) -> List[IFBlock]:
        """The IFBlocks, coarse to fine."""
        return [getattr(self, f"block{i}") for i in range(len(self.config.widths))]

    def scale_list(self, scale: float = 1.0) -> List[float]:
        """Per-block downscale factors: ``[8, 4, 2, 1] / scale`` (the releases' ``scale`` option)."""
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        return [s / scale for s in BASE_SCALES]

    def forward(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: Union[float, torch.Tensor] = 0.5,
        scale: float = 1.0,
        ensemble: bool = False,
    ) -> torch.Tensor:
        """The frame at ``timestep`` (a float or a ``[B]`` tensor) between RGB frames ``[B, 3, H, W]`` in 0..1."""
        return self.forward_all(img0, img1, timestep, scale, ensemble)[-1]

    def forward_all(
        self,
        img0: torch.Tensor,
        img1: torch.Tensor,
        timestep: Union[float, torch.Tensor] = 0.5,
        scale: float = 1.0,
        ensemble: bool = False,
    ) -> List[torch.Tensor]:
        """The merged frame after every block (coarse to fine); the last one is the result."""
        b, _, h, w = img0.shape
        t = torch.as_tensor(timestep, dtype=img0.dtype, device=img0.device).reshape(-1, 1, 1, 1)
        t = t.expand(b, 1, h, w)
        f0, f1 = self.encode(img0), self.encode(img1)
        flow: Optional[torch.Tensor] = None
        mask = torch.zeros_like(t)
        warped0, warped1 = img0, img1
        merged: List[torch.Tensor] = []
        for block, s in zip(self.blocks, self.scale_list(scale)):
            if flow is None:
                flow, mask = block(torch.cat((img0, img1, f0, f1, t), 1), None, s)
                if ensemble:
                    flow_r, mask_r = block(torch.cat((img1, img0, f1, f0, 1 - t), 1), None, s)
                    flow, mask = (flow + _swap(flow_r)) / 2, (mask - mask_r) / 2
            else:
                wf0, wf1 = backward_warp(f0, flow[:, :2]), backward_warp(f1, flow[:, 2:4])
                delta, new_mask = block(torch.cat((warped0, warped1, wf0, wf1, t, mask), 1), flow, s)
                if ensemble:
                    delta_r, mask_r = block(torch.cat((warped1, warped0, wf1, wf0, 1 - t, -mask), 1), _swap(flow), s)
                    delta, new_mask = (delta + _swap(delta_r)) / 2, (new_mask - mask_r) / 2
                flow, mask = flow + delta, new_mask
            warped0, warped1 = backward_warp(img0, flow[:, :2]), backward_warp(img1, flow[:, 2:4])
            weight = torch.sigmoid(mask)
            merged.append(warped0 * weight + warped1 * (1 - weight))
        return merged


def pad_multiple(scale: float = 1.0) -> int:
    """Frame sides must be multiples of this: 32 at scale >= 1, 64 at 0.5, 128 at 0.25."""
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return int(round(32 / min(scale, 1.0)))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Zero-pad ``[B, C, H, W]`` on the right and bottom to multiples of ``multiple``; returns it and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), (h, w)


def ifnet_config_from_state_dict(state_dict: Dict[str, torch.Tensor]) -> IFNetConfig:
    """Block widths and ResConv counts from key names and shapes (``blockN.conv0.1.0.weight`` is ``[c, c/2, 3, 3]``)."""
    widths: List[int] = []
    while f"block{len(widths)}.conv0.1.0.weight" in state_dict:
        widths.append(int(state_dict[f"block{len(widths)}.conv0.1.0.weight"].shape[0]))
    resconvs = 0
    while f"block0.convblock.{resconvs}.conv.weight" in state_dict:
        resconvs += 1
    return IFNetConfig(tuple(widths), resconvs)


def interpolate_batch(
    model: IFNet,
    img0: torch.Tensor,
    img1: torch.Tensor,
    timesteps: Sequence[float],
    *,
    scale: float = 1.0,
    ensemble: bool = False,
) -> torch.Tensor:
    """Frames ``[T, 3, H, W]`` at ``timesteps`` between ``img0`` and ``img1`` (``[1, 3, H, W]``), any H, W.

    Pads to :func:`pad_multiple` and crops back; runs in the model's dtype and device.
    """
    param = next(model.parameters())
    multiple = pad_multiple(scale)
    a, (h, w) = pad_to_multiple(img0.to(param), multiple)
    b, _ = pad_to_multiple(img1.to(param), multiple)
    n = len(timesteps)
    t = torch.tensor(list(timesteps), dtype=param.dtype, device=param.device)
    with torch.no_grad():
        out = model(a.expand(n, -1, -1, -1), b.expand(n, -1, -1, -1), t, scale=scale, ensemble=ensemble)
    return out[:, :, :h, :w]
