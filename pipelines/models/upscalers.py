"""Per-frame super-resolution nets of the ESRGAN family, in the key layout of the released files.

- :class:`RRDBNet`: ESRGAN / Real-ESRGAN (``RealESRGAN_x4plus.pth``), basicsr "new-arch" names ``conv_first``,
  ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1/2``, ``conv_hr``, ``conv_last``. The trunk always upsamples
  4x with two nearest-neighbour + conv stages; scale 2 and 1 models pixel-unshuffle the input first (so
  ``conv_first`` takes 3*4 or 3*16 channels).
- :class:`SRVGGNetCompact`: Real-ESRGAN's compact net (``realesr-general-x4v3.pth``): a flat ``body`` of
  conv/activation pairs ending in a conv to ``3 * scale**2`` channels, a pixel shuffle, plus the
  nearest-upsampled input.

``*_config_from_state_dict`` read the architecture (and so the scale) from the weights' shapes alone.
"""

import math
import re
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Union

import torch
import torch.nn.functional as F
from torch import nn

from .weights import HoldsWeights

LRELU_SLOPE = 0.2  # ESRGAN's leaky ReLU
RESIDUAL_SCALE = 0.2  # residual scaling inside RDB and RRDB blocks


class UpscalerConfigError(ValueError):
    """The weights do not describe a consistent upscaler of the expected architecture."""


@dataclass(frozen=True)
class RRDBNetConfig:
    """RRDBNet hyper-parameters (basicsr names). RealESRGAN_x4plus: 3, 3, 64, 23, 32, 4."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    scale: int = 4

    def to_dict(self) -> dict:
        """Plain dict (for file metadata)."""
        return asdict(self)


@dataclass(frozen=True)
class SRVGGNetCompactConfig:
    """SRVGGNetCompact hyper-parameters (Real-ESRGAN names). realesr-general-x4v3: 3, 3, 64, 32, 4, prelu."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 32
    upscale: int = 4
    act_type: str = "prelu"

    @property
    def scale(self) -> int:
        """Upscaling factor (the same name as RRDBNetConfig's)."""
        return self.upscale

    def to_dict(self) -> dict:
        """Plain dict (for file metadata)."""
        return asdict(self)


UpscalerConfig = Union[RRDBNetConfig, SRVGGNetCompactConfig]


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the output is scaled by 0.2 and added to the input."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, num_feat, H, W] -> same shape."""
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), LRELU_SLOPE))
        return self.conv5(torch.cat(features, 1)) * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, scaled by 0.2, plus the input."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, num_feat, H, W] -> same shape."""
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator: [N, 3, H, W] in 0..1 -> [N, 3, H*scale, W*scale] (H, W divisible by 4/scale)."""

    def __init__(self, config: RRDBNetConfig = RRDBNetConfig()):
        super().__init__()
        if config.scale not in (1, 2, 4):
            raise UpscalerConfigError(f"RRDBNet scale must be 1, 2 or 4, got {config.scale}")
        self.config = config
        unshuffle = 4 // config.scale
        self.conv_first = nn.Conv2d(config.num_in_ch * unshuffle * unshuffle, config.num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(config.num_feat, config.num_grow_ch) for _ in range(config.num_block)])
        self.conv_body = nn.Conv2d(config.num_feat, config.num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(config.num_feat, config.num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(config.num_feat, config.num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(config.num_feat, config.num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(config.num_feat, config.num_out_ch, 3, 1, 1)

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each side."""
        return self.config.scale

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the pixel-unshuffle factor)."""
        return 4 // self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, 3, H*scale, W*scale]."""
        if self.size_multiple > 1:
            x = F.pixel_unshuffle(x, self.size_multiple)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2.0, mode="nearest")), LRELU_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LRELU_SLOPE))


def _activation(act_type: str, num_feat: int) -> nn.Module:
    """The compact net's activation module (only PReLU has weights)."""
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU()
    if act_type == "lrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    raise UpscalerConfigError(f"SRVGGNetCompact act_type must be prelu, relu or lrelu, got {act_type!r}")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style SR net: body convs in low resolution, pixel shuffle, plus the nearest-upsampled input."""

    def __init__(self, config: SRVGGNetCompactConfig = SRVGGNetCompactConfig()):
        super().__init__()
        self.config = config
        c = config
        layers = [nn.Conv2d(c.num_in_ch, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        for _ in range(c.num_conv):
            layers += [nn.Conv2d(c.num_feat, c.num_feat, 3, 1, 1), _activation(c.act_type, c.num_feat)]
        layers.append(nn.Conv2d(c.num_feat, c.num_out_ch * c.upscale * c.upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each side."""
        return self.config.upscale

    @property
    def size_multiple(self) -> int:
        """Any input size works."""
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, 3, H*scale, W*scale]."""
        out = F.pixel_shuffle(self.body(x), self.config.upscale)
        return out + F.interpolate(x, scale_factor=float(self.config.upscale), mode="nearest")


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, arch: str) -> torch.Size:
    """Shape of ``key``, or a clear error naming the architecture that needs it."""
    if key not in state_dict:
        raise UpscalerConfigError(f"not an {arch} state dict: key {key!r} is missing")
    return state_dict[key].shape


def rrdbnet_config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> RRDBNetConfig:
    """RRDBNet hyper-parameters (scale included) from new-arch key names and shapes."""
    first = _shape(state_dict, "conv_first.weight", "RRDBNet")
    last = _shape(state_dict, "conv_last.weight", "RRDBNet")
    grow = _shape(state_dict, "body.0.rdb1.conv1.weight", "RRDBNet")
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight$", k))}
    num_out, num_feat = int(last[0]), int(first[0])
    in_ratio = int(first[1]) // num_out
    scales = {1: 4, 4: 2, 16: 1}
    if int(first[1]) % num_out or in_ratio not in scales:
        raise UpscalerConfigError(
            f"RRDBNet conv_first takes {int(first[1])} channels for {num_out} output channels: expected 1x, 4x or "
            f"16x (scale 4, 2 or 1 with pixel-unshuffle)"
        )
    if blocks != set(range(len(blocks))):
        raise UpscalerConfigError(f"RRDBNet body blocks are not numbered 0..N-1: {sorted(blocks)[:8]}...")
    return RRDBNetConfig(num_out, num_out, num_feat, len(blocks), int(grow[0]), scales[in_ratio])


def srvgg_config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> SRVGGNetCompactConfig:
    """SRVGGNetCompact hyper-parameters from the flat ``body.N`` keys; the scale from the last conv's width."""
    conv_ids = sorted(int(m.group(1)) for k in state_dict if (m := re.match(r"body\.(\d+)\.bias$", k)))
    if not conv_ids or conv_ids[0] != 0:
        raise UpscalerConfigError("not an SRVGGNetCompact state dict: key 'body.0.bias' is missing")
    first, last = _shape(state_dict, "body.0.weight", "SRVGGNetCompact"), state_dict[f"body.{conv_ids[-1]}.weight"]
    num_in, num_feat = int(first[1]), int(first[0])
    upscale = math.isqrt(int(last.shape[0]) // num_in)
    if upscale < 1 or upscale * upscale * num_in != int(last.shape[0]):
        raise UpscalerConfigError(
            f"SRVGGNetCompact last conv has {int(last.shape[0])} channels: expected 3 * scale^2 (scale 1, 2, 3, 4...)"
        )
    act_type = "prelu" if "body.1.weight" in state_dict else "lrelu"  # relu and lrelu files look the same
    return SRVGGNetCompactConfig(num_in, num_in, num_feat, len(conv_ids) - 2, upscale, act_type)


def build_upscaler(config: UpscalerConfig) -> nn.Module:
    """An untrained net of ``config``'s architecture."""
    if isinstance(config, RRDBNetConfig):
        return RRDBNet(config)
    return SRVGGNetCompact(config)


def module_shapes(module: nn.Module) -> Dict[str, tuple]:
    """``{key: shape}`` of a module's state dict (works on the meta device)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@dataclass
class UpscaleModel(HoldsWeights):
    """What a ``FF_UPSCALE_MODEL`` socket carries: a per-frame SR net and how to call it.

    net: ``[N, 3, H, W]`` in 0..1 -> ``[N, 3, H*scale, W*scale]``. size_multiple: H and W must be multiples of it.
    feature_channels: width of the net's widest feature map at output resolution, for the memory pre-flight
    (``pipelines.upscale.estimate_tile_bytes``). architecture: "RRDBNet", "SRVGGNetCompact" or spandrel's name.
    """

    net: nn.Module
    scale: int
    architecture: str
    name: str = ""
    size_multiple: int = 1
    feature_channels: int = 64

    def weights_module(self) -> nn.Module:
        """The SR net."""
        return self.net

    def to(self, device: Union[str, torch.device], dtype: Union[torch.dtype, None] = None) -> "UpscaleModel":
        """Move (and optionally cast) the net in place; returns self."""
        self.net.to(device=device, dtype=dtype)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale ``[N, 3, H, W]`` (no tiling; see ``pipelines.upscale.upscale_tensor``)."""
        return self.net(x)
