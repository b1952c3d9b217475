"""ControlNet (Zhang et al. 2023; seed 001 §4.3, seed 002 P26-28): a trainable copy of the UNet's encoder.

The SD1.5 ControlNet is the UNet's ``time_embed``, ``input_blocks`` and ``middle_block`` (same classes and
parameter names as :class:`~.unet.UNetModel`), plus

* ``input_hint_block``: convolutions with SiLU between them that turn the control image ``[N, 3, H, W]``
  into a feature map of the latent size (each stride-2 convolution halves the size; SD: 512 px -> 64);
  its output is added to the output of the first input block (the ``conv_in``);
* ``zero_convs``: one zero-initialised 1x1 convolution per input block, giving the residual added to that
  skip connection of the UNet;
* ``middle_block_out``: a zero-initialised 1x1 convolution giving the residual of the middle block.

Parameter names are the original ones (lllyasviel's ``cldm.ControlNet``), so prefix-less files load 1:1.
The ControlNet is a per-image model: frames are folded into the batch and never mixed, so the residuals of a
frame depend only on that frame's latent, timestep, context and control image.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from .configs import config_from_dict, config_to_dict
from .layers import ResBlock, SpatialTransformer, timestep_embedding
from .unet import UNetConfig, UNetModel, encoder_blocks, middle_block
from .weights import HoldsWeights

Residuals = Dict[str, Union[List[torch.Tensor], torch.Tensor]]


@dataclass(frozen=True)
class ControlNetConfig:
    """Architecture of a ControlNet.

    unet: the encoder's architecture (the UNet it controls; output-side fields are unused).
    hint_channels: channels of the control image (3 for RGB).
    embedding_channels: channels of the hint convolutions; every step between two entries halves the size
      (SD1.5: (16, 32, 96, 256), 8x down; a 4x-down VAE needs three entries).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    hint_channels: int = 3
    embedding_channels: Tuple[int, ...] = (16, 32, 96, 256)

    def __post_init__(self) -> None:
        object.__setattr__(self, "embedding_channels", tuple(self.embedding_channels))
        if not self.embedding_channels:
            raise ValueError("ControlNetConfig: embedding_channels needs at least one entry")

    @property
    def downscale(self) -> int:
        """Pixels of control image per latent pixel (2 ** number of stride-2 hint convolutions)."""
        return 2 ** (len(self.embedding_channels) - 1)

    @classmethod
    def sd15(cls) -> "ControlNetConfig":
        """The SD1.5 ControlNet (control_v11*_sd15 yaml)."""
        return cls(UNetConfig.sd15())

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {
            "unet": config_to_dict(self.unet),
            "hint_channels": self.hint_channels,
            "embedding_channels": list(self.embedding_channels),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ControlNetConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(
            config_from_dict(UNetConfig, d["unet"]), int(d.get("hint_channels", 3)), tuple(d["embedding_channels"])
        )


def hint_block(hint_channels: int, channels: Tuple[int, ...], model_channels: int) -> nn.Sequential:
    """``input_hint_block``: conv_in, then (conv, stride-2 conv) per step, then a zero conv; SiLU between.

    Layout of cldm's ``input_hint_block`` (convolutions at even indices, SiLU at odd ones).
    """
    layers: List[nn.Module] = [nn.Conv2d(hint_channels, channels[0], 3, padding=1), nn.SiLU()]
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.SiLU()]
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, stride=2), nn.SiLU()]
    layers.append(nn.Conv2d(channels[-1], model_channels, 3, padding=1))
    return nn.Sequential(*layers)


def zero_conv(channels: int) -> nn.Sequential:
    """A 1x1 convolution initialised to zero (a ControlNet starts as a no-op)."""
    conv = nn.Conv2d(channels, channels, 1)
    with torch.no_grad():
        for p in conv.parameters():
            p.zero_()
    return nn.Sequential(conv)


class ControlNetModel(nn.Module):
    """The SD ControlNet: encoder copy + hint embedding + zero convs; returns the UNet's ``control=`` residuals."""

    def __init__(self, config: ControlNetConfig):
        super().__init__()
        self.config = config
        u = config.unet
        mc, emb_dim = u.model_channels, u.model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_hint_block = hint_block(config.hint_channels, config.embedding_channels, mc)
        with torch.no_grad():  # the hint embedding's last convolution starts at zero too
            for p in self.input_hint_block[-1].parameters():
                p.zero_()
        self.input_blocks, channels, ch = encoder_blocks(u)
        self.zero_convs = nn.ModuleList([zero_conv(c) for c in channels])
        self.middle_block = middle_block(u, ch)
        self.middle_block_out = zero_conv(ch)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: Union[torch.Tensor, float],
        context: torch.Tensor,
        hint: torch.Tensor,
        *,
        attention_backend: str = "auto",
    ) -> Residuals:
        """Residuals ``{"down": [one per input block], "mid": tensor}`` for ``x [N, C, h, w]``.

        timesteps ``[N]`` (or one value); context ``[N or 1, L, D]``; hint: the control images
        ``[N, hint_channels, h * downscale, w * downscale]`` in 0..1.
        """
        n = x.shape[0]
        expected = (
            n,
            self.config.hint_channels,
            x.shape[2] * self.config.downscale,
            x.shape[3] * self.config.downscale,
        )
        if tuple(hint.shape) != expected:
            raise ValueError(
                f"ControlNet: hint must be {expected} for latent {tuple(x.shape)}, got {tuple(hint.shape)}"
            )
        if context.shape[0] not in (1, n):
            raise ValueError(f"ControlNet: context batch {context.shape[0]} fits neither 1 nor {n}")
        t = UNetModel._per_frame_timesteps(timesteps, n, x.device)
        emb = self.time_embed(timestep_embedding(t, self.config.unet.model_channels).to(x.dtype))
        guided = self.input_hint_block(hint)
        h = x
        down = []
        for index, (block, out_conv) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = self._run_block(block, h, emb, context, attention_backend)
            if index == 0:
                h = h + guided
            down.append(out_conv(h))
        h = self._run_block(self.middle_block, h, emb, context, attention_backend)
        return {"down": down, "mid": self.middle_block_out(h)}

    @staticmethod
    def _run_block(
        block: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, backend: str
    ) -> torch.Tensor:
        """The layers of one encoder block (no temporal layers: the ControlNet is per frame)."""
        for layer in block.children():
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context, backend=backend)
            else:  # conv_in or a Downsample
                h = layer(h)
        return h


@dataclass(frozen=True)
class ControlNet(HoldsWeights):
    """What a FF_CONTROLNET socket carries: a ControlNet model and its name."""

    model: ControlNetModel
    name: str = ""

    @property
    def config(self) -> ControlNetConfig:
        """The model's architecture."""
        return self.model.config


def scale_residuals(residuals: Residuals, scale: float, mask: Optional[torch.Tensor] = None) -> Residuals:
    """Residuals times ``scale`` and, when given, a ``mask [N, 1, H, W]`` resized (area) to each residual."""

    def one(r: torch.Tensor) -> torch.Tensor:
        r = r * scale
        if mask is not None:
            m = torch.nn.functional.interpolate(mask.to(r.dtype), size=r.shape[-2:], mode="area")
            r = r * m
        return r

    return {"down": [one(r) for r in residuals["down"]], "mid": one(residuals["mid"])}  # type: ignore[union-attr,arg-type]
