"""The denoising UNet (SD1.x / SD2.x layout) with optional temporal layers.

Parameter names are the original LDM ones (``time_embed``, ``input_blocks.N.M``, ``middle_block``,
``output_blocks``, ``out``) so the ``model.diffusion_model.`` part of an SD checkpoint loads 1:1.

Frames are folded into the batch: ``x [(b f), C, h, w]``. Spatial layers treat every frame as an image;
temporal layers (AnimateDiff motion modules attached with :meth:`UNetModel.with_motion`, and the optional
Temp-Conv layers after ResBlocks) unfold the frames. With no temporal layers the model is the per-frame
image model.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from ...kernels import CrossFrame, Window, parse_pattern
from .layers import Downsample, ResBlock, SpatialTransformer, Upsample, group_norm, timestep_embedding
from .motion import MotionModule, TemporalConv


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a UNet (LDM ``UNetModel`` arguments).

    attention_levels: indices of the channel_mult levels that carry spatial transformers (SD: 0, 1, 2).
    Heads: give ``num_heads`` (SD1: 8) or ``num_head_channels`` (SD2: 64); the other is -1.
    temporal_conv: add a zero-initialised Temp-Conv layer after every ResBlock (VidRD).
    """

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple = (0, 1, 2)
    num_heads: int = 8
    num_head_channels: int = -1
    context_dim: int = 768
    transformer_depth: int = 1
    use_linear_projection: bool = False
    norm_groups: int = 32
    mid_attention: bool = True
    temporal_conv: bool = False

    def __post_init__(self):
        for name in ("channel_mult", "attention_levels"):  # JSON gives lists; keep configs hashable/comparable
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if (self.num_heads == -1) == (self.num_head_channels == -1):
            raise ValueError("UNetConfig: give exactly one of num_heads or num_head_channels (the other -1)")
        for level in self.attention_levels:
            if not 0 <= level < len(self.channel_mult):
                raise ValueError(f"UNetConfig: attention level {level} outside channel_mult {self.channel_mult}")

    @classmethod
    def sd15(cls, **overrides: Any) -> "UNetConfig":
        """Stable Diffusion 1.x (v1-inference.yaml)."""
        return cls(**overrides)

    @classmethod
    def sd2(cls, **overrides: Any) -> "UNetConfig":
        """Stable Diffusion 2.x (v2-inference.yaml): head dim 64, 1024-d OpenCLIP context, linear proj."""
        base = dict(num_heads=-1, num_head_channels=64, context_dim=1024, use_linear_projection=True)
        return cls(**{**base, **overrides})

    @classmethod
    def from_attention_resolutions(
        cls, attention_resolutions: Tuple[int, ...], channel_mult: Tuple[int, ...] = (1, 2, 4, 4), **kwargs: Any
    ) -> "UNetConfig":
        """Build from LDM's ``attention_resolutions`` (downsample factors 1, 2, 4, ...)."""
        levels = tuple(i for i in range(len(channel_mult)) if 2**i in set(attention_resolutions))
        return cls(channel_mult=tuple(channel_mult), attention_levels=levels, **kwargs)

    def heads_for(self, channels: int) -> Tuple[int, int]:
        """(heads, head_dim) of a spatial transformer with ``channels``."""
        if self.num_head_channels != -1:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads

    def with_options(self, **changes: Any) -> "UNetConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


class UNetBlock(nn.ModuleList):
    """The layers of one ``input_blocks.N`` / ``output_blocks.N`` / ``middle_block`` entry."""


def _temporal_conv_key(where, index, layer=0):
    """ModuleDict key of the Temp-Conv following a ResBlock, e.g. ``input_4`` / ``middle_2``."""
    return f"{where}_{index}" if where != "middle" else f"middle_{layer}"


def spatial_transformer(config: UNetConfig, channels: int) -> SpatialTransformer:
    """The spatial transformer of a UNet level with ``channels`` (heads from ``config.heads_for``)."""
    heads, dim_head = config.heads_for(channels)
    return SpatialTransformer(
        channels,
        heads,
        dim_head,
        config.transformer_depth,
        config.context_dim,
        config.use_linear_projection,
        config.norm_groups,
    )


def encoder_blocks(config: UNetConfig) -> Tuple[nn.ModuleList, List[int], int]:
    """The UNet encoder (``input_blocks``: conv_in, then per level ResBlocks [+ transformer] and a Downsample),
    the channels after each block (the skip connections) and the channels at the bottom. The ControlNet copies it."""
    mc, emb_dim, groups = config.model_channels, config.model_channels * 4, config.norm_groups
    blocks = nn.ModuleList([UNetBlock([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
    channels = [mc]
    ch = mc
    last_level = len(config.channel_mult) - 1
    for level, mult in enumerate(config.channel_mult):
        for _ in range(config.num_res_blocks):
            layers: List[nn.Module] = [ResBlock(ch, emb_dim, mc * mult, groups)]
            ch = mc * mult
            if level in config.attention_levels:
                layers.append(spatial_transformer(config, ch))
            blocks.append(UNetBlock(layers))
            channels.append(ch)
        if level != last_level:
            blocks.append(UNetBlock([Downsample(ch)]))
            channels.append(ch)
    return blocks, channels, ch


def middle_block(config: UNetConfig, channels: int) -> "UNetBlock":
    """ResBlock, [spatial transformer,] ResBlock at the bottom of the UNet."""
    emb_dim, groups = config.model_channels * 4, config.norm_groups
    middle: List[nn.Module] = [ResBlock(channels, emb_dim, channels, groups)]
    if config.mid_attention:
        middle.append(spatial_transformer(config, channels))
    middle.append(ResBlock(channels, emb_dim, channels, groups))
    return UNetBlock(middle)


class UNetModel(nn.Module):
    """SD UNet with frames folded into the batch; temporal layers are optional add-ons."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        mc = config.model_channels
        emb_dim = mc * 4
        groups = config.norm_groups
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_blocks, skip_channels, ch = encoder_blocks(config)
        self.middle_block = middle_block(config, ch)
        temporal_convs: Dict[str, int] = {}
        if config.temporal_conv:
            for index, block in enumerate(self.input_blocks):
                if isinstance(block, UNetBlock) and isinstance(block[0], ResBlock):
                    temporal_convs[_temporal_conv_key("input", index)] = skip_channels[index]
            temporal_convs[_temporal_conv_key("middle", 0, 0)] = ch
            temporal_convs[_temporal_conv_key("middle", 0, len(self.middle_block) - 1)] = ch
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers: List[nn.Module] = [ResBlock(ch + skip_channels.pop(), emb_dim, mc * mult, groups)]
                ch = mc * mult
                if level in config.attention_levels:
                    layers.append(self._transformer(ch))
                if config.temporal_conv:
                    temporal_convs[_temporal_conv_key("output", len(self.output_blocks))] = ch
                if level and i == config.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(UNetBlock(layers))
        self.out = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(ch, config.out_channels, 3, padding=1))
        self._temporal_conv_channels = temporal_convs
        self.temporal_convs = self.make_temporal_convs() if temporal_convs else None

    def make_temporal_convs(self) -> nn.ModuleDict:
        """Fresh (identity) Temp-Conv layers for this UNet, keyed like ``temporal_convs``."""
        groups = self.config.norm_groups
        return nn.ModuleDict({k: TemporalConv(c, norm_groups=groups) for k, c in self._temporal_conv_channels.items()})

    def _transformer(self, channels: int) -> SpatialTransformer:
        """A spatial transformer for a level with ``channels``."""
        return spatial_transformer(self.config, channels)

    def with_motion(self, motion_module: MotionModule, norm_across_frames: Optional[bool] = None) -> "AnimatedUNet":
        """This UNet with a motion module set attached; the weights of both are shared, not copied.

        norm_across_frames: None keeps the module config's choice (see ``MotionModuleConfig``).
        """
        return AnimatedUNet(self, motion_module, norm_across_frames)

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        num_frames: int = 1,
        motion_scale: float = 1.0,
        attention_backend: str = "auto",
        temporal_pattern: Optional[str] = None,
        control: Any = None,
        *,
        temporal_layers: Optional[Dict[Tuple[str, int], nn.Module]] = None,
        joint_frame_groupnorm: bool = False,
        motion_norm_across_frames: bool = False,
    ) -> torch.Tensor:
        """Predict noise (or v) for ``x [(b f), C, h, w]``.

        timesteps ``[(b f)]`` (or one value); context ``[(b f) or b or 1, L, D]``; control: optional
        ``{"down": [one residual per skip connection], "mid": residual}`` added as ControlNet does.
        ``temporal_layers`` (set by :class:`AnimatedUNet`) maps block positions to motion modules;
        ``joint_frame_groupnorm`` shares ResBlock GroupNorm statistics across frames (AnimateDiff v1).
        """
        n = x.shape[0]
        if n % num_frames:
            raise ValueError(f"UNet: batch {n} is not a multiple of num_frames {num_frames}")
        context = self._per_frame_context(context, n, num_frames)
        t = self._per_frame_timesteps(timesteps, n, x.device)
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(x.dtype))
        spatial_pattern, motion_pattern = route_pattern(temporal_pattern, num_frames)
        step = _Step(
            emb=emb,
            context=context,
            frames=num_frames,
            scale=motion_scale,
            backend=attention_backend,
            pattern=motion_pattern,
            spatial_pattern=spatial_pattern,
            temporal=temporal_layers or {},
            joint=num_frames if joint_frame_groupnorm else None,
            motion_joint_norm=motion_norm_across_frames,
        )
        down_control, mid_control = self._split_control(control)
        h = x
        skips = []
        for index, block in enumerate(self.input_blocks):
            h = self._run_block(block, h, step, "input", index)
            skips.append(h)
        if down_control is not None:
            skips = [s if c is None else s + c for s, c in zip(skips, down_control)]
        h = self._run_middle(h, step)
        if mid_control is not None:
            h = h + mid_control
        for index, block in enumerate(self.output_blocks):
            h = torch.cat([h, skips.pop()], dim=1)
            size = skips[-1].shape[-2:] if skips else None
            h = self._run_block(block, h, step, "output", index, upsample_size=size)
        out_norm: Any = self.out[0]
        h = torch.nn.functional.silu(group_norm(h, out_norm, step.joint))
        return self.out[2](h)

    def _split_control(self, control):
        """Validate the ControlNet residuals: ``down`` has one entry per skip connection."""
        if not control:
            return None, None
        unknown = set(control) - {"down", "mid"}
        if unknown:
            raise ValueError(f"UNet control: unknown keys {sorted(unknown)}; expected 'down' and/or 'mid'")
        down = control.get("down")
        if down is not None and len(down) != len(self.input_blocks):
            raise ValueError(f"UNet control: 'down' needs {len(self.input_blocks)} residuals, got {len(down)}")
        return down, control.get("mid")

    @staticmethod
    def _per_frame_context(context, n, num_frames):
        """Context for the ``n`` folded frames, kept as small as possible.

        Accepts ``[n, L, D]`` (per frame), ``[n / F, L, D]`` (per video) or ``[1, L, D]``. A per-frame
        context whose frames are all equal within each video is reduced to one per video, so that
        cross-attention projects it once (attention broadcasts it back over the frames).
        """
        if context.shape[0] == n:
            if num_frames > 1:
                videos = context.reshape(n // num_frames, num_frames, *context.shape[1:])
                if torch.equal(videos, videos[:, :1].expand_as(videos)):
                    return videos[:, 0]
            return context
        if context.shape[0] == 1 or context.shape[0] * num_frames == n:
            return context
        raise ValueError(f"UNet: context batch {context.shape[0]} fits neither {n} frames nor {n // num_frames} videos")

    @staticmethod
    def _per_frame_timesteps(timesteps, n, device):
        """Timesteps as a float tensor ``[n]``."""
        t = torch.as_tensor(timesteps, device=device)
        if t.ndim == 0:
            t = t[None]
        if t.shape[0] == 1:
            t = t.expand(n)
        if t.shape[0] != n:
            raise ValueError(f"UNet: timesteps {tuple(t.shape)} do not match batch {n}")
        return t

    def _run_block(self, block, h, step, where, index, upsample_size=None):
        """One input/output block: ResBlock, transformer, temporal layers, then any down/up-sampler."""
        for layer in block:
            if isinstance(layer, ResBlock):
                h = layer(h, step.emb, step.joint)
                h = self._temporal_conv(h, step, _temporal_conv_key(where, index))
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, step.context, backend=step.backend, self_pattern=step.spatial_pattern)
            elif isinstance(layer, Upsample):
                h = self._motion(h, step, (where, index))
                h = layer(h, upsample_size)
                return h
            elif isinstance(layer, Downsample):
                return layer(h)
            else:  # the input convolution
                return layer(h)
        return self._motion(h, step, (where, index))

    def _run_middle(self, h, step):
        """Middle block: ResBlock, transformer, motion module (v2), ResBlock."""
        for i, layer in enumerate(self.middle_block):
            if isinstance(layer, ResBlock):
                h = layer(h, step.emb, step.joint)
                h = self._temporal_conv(h, step, _temporal_conv_key("middle", 0, i))
            else:
                h = layer(h, step.context, backend=step.backend, self_pattern=step.spatial_pattern)
                h = self._motion(h, step, ("middle", 0))
        return h

    def _temporal_conv(self, h, step, key):
        """Apply the Temp-Conv after a ResBlock, if this UNet has them."""
        if self.temporal_convs is None or key not in self.temporal_convs:
            return h
        return self.temporal_convs[key](h, step.frames, scale=step.scale)

    @staticmethod
    def _motion(h, step, slot):
        """Apply the motion module attached at ``slot``, if any."""
        module = step.temporal.get(slot)
        if module is None:
            return h
        return module(
            h,
            step.frames,
            scale=step.scale,
            norm_across_frames=step.motion_joint_norm,
            backend=step.backend,
            pattern=step.pattern,
        )


def route_pattern(temporal_pattern: Optional[str], num_frames: int) -> Tuple[Any, Any]:
    """(spatial self-attention pattern, temporal attention pattern) for a ``temporal_pattern`` knob.

    ``window:<r>`` bands the motion modules' attention over frames; ``cross_frame:...`` makes every
    frame's spatial self-attention look at other frames (Text2Video-Zero / sparse-causal attention).
    """
    pattern = parse_pattern(temporal_pattern, num_frames=num_frames)
    if pattern is None:
        return None, None
    if isinstance(pattern, CrossFrame):
        return pattern, None
    if isinstance(pattern, Window):
        return None, pattern
    raise ValueError(f"UNet: unsupported temporal_pattern {temporal_pattern!r}")


@dataclass
class _Step:
    """Everything the blocks need for one forward pass."""

    emb: torch.Tensor
    context: torch.Tensor
    frames: int
    scale: float
    backend: str
    pattern: Optional[object]
    spatial_pattern: Optional[object] = None
    temporal: dict = field(default_factory=dict)
    joint: Optional[int] = None
    motion_joint_norm: bool = False


class AnimatedUNet(nn.Module):
    """A UNet plus an attached AnimateDiff motion module set; both are shared, never copied.

    ``state_dict()`` holds ``unet.*`` and ``motion.*``. Calling it follows the UNet contract. The motion
    module's version decides the GroupNorm mode (v1: ResBlock norms joint across frames).
    """

    def __init__(self, unet: UNetModel, motion: MotionModule, norm_across_frames: Optional[bool] = None):
        super().__init__()
        self.unet = unet
        self.motion = motion
        self.norm_across_frames = motion.config.norm_across_frames if norm_across_frames is None else norm_across_frames
        self._slots = motion.slots(unet.config)

    @property
    def config(self) -> UNetConfig:
        """The UNet's config."""
        return self.unet.config

    @property
    def frame_window(self) -> int:
        """Longest window of frames the motion module handles at once."""
        return self.motion.max_frames

    def without_motion(self) -> UNetModel:
        """The plain UNet (per-frame image model)."""
        return self.unet

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        num_frames: int = 1,
        motion_scale: float = 1.0,
        attention_backend: str = "auto",
        temporal_pattern: Optional[str] = None,
        control: Any = None,
    ) -> torch.Tensor:
        """The UNet contract with the motion modules applied at their slots.

        motion_scale 0 is exactly the plain UNet (per-frame GroupNorm too, even for v1 modules).
        """
        if motion_scale == 0:
            return self.unet(
                x,
                timesteps,
                context,
                num_frames=num_frames,
                attention_backend=attention_backend,
                temporal_pattern=temporal_pattern,
                control=control,
            )
        if num_frames > self.frame_window:
            raise ValueError(
                f"motion module handles at most {self.frame_window} frames per window, got num_frames={num_frames}"
            )
        return self.unet(
            x,
            timesteps,
            context,
            num_frames=num_frames,
            motion_scale=motion_scale,
            attention_backend=attention_backend,
            temporal_pattern=temporal_pattern,
            control=control,
            temporal_layers=self._slots,
            joint_frame_groupnorm=self.motion.config.unet_joint_groupnorm,
            motion_norm_across_frames=self.norm_across_frames,
        )
