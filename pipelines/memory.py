"""Memory pre-flight: estimate the peak memory of a sampler run or a VAE decode before computing it.

The estimates walk the model's own module structure (UNet blocks, motion modules, decoder stages) with the
shapes of the run and count the activation tensors that are alive at once under ``torch.no_grad()``: the skip
connections the UNet keeps, the current feature map, and each layer's transient buffers (a transformer's
GEGLU feed-forward is the largest: ``3 + 3 * ff_mult`` feature maps). Attention runs through PyTorch's SDPA,
which on CPU and CUDA uses a fused kernel that never builds the ``[seq, seq]`` matrix for the UNet's contiguous
inputs; the matrix is counted on MPS, and for the VAE's attention, whose strided inputs send SDPA down its math
path. Nothing is allocated: an 8192x8192 video is refused in milliseconds.

``check_sampler_memory`` / ``check_decode_memory`` compare the estimate with what the compute device has
free (free VRAM on a GPU, ``MemAvailable`` on the CPU) and raise :class:`MemoryPreflightError` naming the
node and the setting that would fit (context length, frame chunk, tile size, or a smaller size).
``bench/memory_preflight.py`` prints estimate vs measured peak.
"""

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

GIB = 2**30
# Fraction of the free memory a run may plan to use: allocator fragmentation and the host's own buffers.
USABLE_FRACTION = 0.9
CONTEXT_LENGTHS = (32, 24, 16, 12, 8, 4, 2, 1)
FRAME_CHUNKS = (16, 8, 4, 2, 1)
TILE_SIZES_PX = (512, 384, 256, 192, 128, 64)


class MemoryPreflightError(ValueError):
    """A run that would not fit in the compute device's memory; the message names the node and what fits."""


@dataclass
class _Live:
    """Bytes alive now and the highest value seen, for walking a forward pass."""

    live: float = 0.0
    peak: float = 0.0

    def transient(self, extra: float) -> None:
        """A layer's buffers that exist only while it runs."""
        self.peak = max(self.peak, self.live + extra)

    def alloc(self, nbytes: float) -> None:
        """A tensor that stays alive after the layer."""
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def free(self, nbytes: float) -> None:
        """A tensor released."""
        self.live -= nbytes


def _element_size(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype``."""
    return dtype.itemsize


def _parameter_bytes(module: nn.Module, dtype: Optional[torch.dtype] = None) -> int:
    """Bytes of the module's parameters and buffers (in ``dtype`` for floating tensors when given)."""
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        size = dtype.itemsize if dtype is not None and t.dtype.is_floating_point else t.dtype.itemsize
        total += t.numel() * size
    return total


def _weights_to_move(module: nn.Module, now: torch.device, target: torch.device, dtype: torch.dtype) -> int:
    """Bytes the weights add on ``target``: none when they already live there."""
    return 0 if torch.device(now) == torch.device(target) else _parameter_bytes(module, dtype)


# --- UNet -------------------------------------------------------------------------------------------------


def _feed_forward_multiple(ff_mult: int) -> int:
    """Feature maps alive at a transformer block's peak: residual, norm, GEGLU (2 * mult), gelu (mult)."""
    return 3 + 3 * ff_mult


def _attention_matrix_bytes(batch: int, heads: int, q_len: int, k_len: int, elem: int, device: torch.device) -> int:
    """The ``[batch, heads, q, k]`` scores SDPA materialises: none with the fused CPU / CUDA kernels."""
    if device.type in ("cpu", "cuda", "meta"):
        return 0
    return 2 * batch * heads * q_len * k_len * elem


def _strided_attention_bytes(batch: int, seq: int, elem: int) -> int:
    """Score bytes of the VAE's single-head AttnBlock: it hands SDPA strided ``(h w) c`` views, for which PyTorch
    takes the math path and materialises the ``[seq, seq]`` scores. Measured on the CPU: about 2.25 score
    matrices (scores and softmax); once the scores pass 2**31 elements a single request of 8 score matrices was
    seen (64 GiB for 8 frames of 128x128 latents), so that is what is counted there."""
    scores = batch * seq * seq
    return int((2.25 if scores < 2**31 else 8) * scores * elem)


def _split_animated(unet: Any) -> tuple[Any, dict]:
    """(plain UNet, motion-module slots) of a UNetModel or an AnimatedUNet."""
    motion = getattr(unet, "motion", None)
    core = getattr(unet, "unet", unet)
    if motion is None:
        return core, {}
    return core, motion.slots(core.config)


def unet_activation_bytes(
    unet: Any, batch: int, height: int, width: int, dtype: torch.dtype, device: torch.device
) -> int:
    """Peak activation bytes of one UNet forward over ``[batch, C, height, width]`` (inputs and weights excluded).

    ``unet`` is a ``UNetModel`` or an ``AnimatedUNet`` (pipelines/models/unet.py); ``batch`` counts every frame of
    every conditioning in the call (frames x 2 with CFG).
    """
    from .models.layers import Downsample, ResBlock, SpatialTransformer, Upsample

    core, slots = _split_animated(unet)
    if not all(hasattr(core, name) for name in ("input_blocks", "middle_block", "output_blocks", "config")):
        return 0  # not FrameFold's UNet layout (a test stand-in): only the latents are counted
    elem = _element_size(dtype)
    walk = _Live()
    state = {"c": core.config.in_channels, "h": height, "w": width, "held": True}  # the input stays alive

    def size(c: int) -> int:
        return batch * c * state["h"] * state["w"] * elem

    def replace(c: int, h: int, w: int) -> None:
        """A layer produced the new feature map; the old one is freed unless a skip holds it."""
        old = size(state["c"])
        state.update(c=c, h=h, w=w)
        walk.alloc(size(c))
        if not state["held"]:
            walk.free(old)
        state["held"] = False

    def transformer(channels: int, heads: int, ff_mult: int, q_len: int) -> None:
        matrix = _attention_matrix_bytes(batch, heads, q_len, q_len, elem, device)
        walk.transient(_feed_forward_multiple(ff_mult) * size(channels) + matrix)
        replace(channels, state["h"], state["w"])

    def motion(slot: tuple) -> None:
        module = slots.get(slot)
        if module is None:
            return
        block = module.temporal_transformer.transformer_blocks[0]
        ff_mult = block.ff.net[0].proj.out_features // (2 * block.ff.net[0].proj.in_features)
        transformer(state["c"], block.attention_blocks[0].heads, ff_mult, 1)

    def run_block(block: Any, where: str, index: int) -> None:
        for layer in block:
            if isinstance(layer, ResBlock):
                t_in, t_out = size(layer.channels), size(layer.out_channels)
                walk.transient(max(t_in + t_out, 2 * t_out))
                replace(layer.out_channels, state["h"], state["w"])
                key = f"{where}_{index}" if where != "middle" else None
                if core.temporal_convs is not None and key in core.temporal_convs:
                    walk.transient(3 * size(state["c"]))
                    replace(state["c"], state["h"], state["w"])
            elif isinstance(layer, SpatialTransformer):
                attn = layer.transformer_blocks[0].attn1
                transformer(state["c"], attn.heads, 4, state["h"] * state["w"])
                if where == "middle":
                    motion(("middle", 0))
            elif isinstance(layer, Upsample):
                motion((where, index))
                walk.transient(8 * size(state["c"]))
                replace(state["c"], state["h"] * 2, state["w"] * 2)
                return
            elif isinstance(layer, Downsample):
                replace(state["c"], (state["h"] + 1) // 2, (state["w"] + 1) // 2)
                return
            else:  # the input convolution
                replace(layer.out_channels, state["h"], state["w"])
                return
        if where != "middle":
            motion((where, index))

    skips = []
    for index, block in enumerate(core.input_blocks):
        run_block(block, "input", index)
        skips.append((state["c"], state["h"], state["w"]))
        state["held"] = True
    run_block(core.middle_block, "middle", 0)
    for index, block in enumerate(core.output_blocks):
        skip_c, skip_h, skip_w = skips.pop()
        skip_bytes = batch * skip_c * skip_h * skip_w * elem
        replace(state["c"] + skip_c, state["h"], state["w"])  # torch.cat([h, skip])
        walk.free(skip_bytes)
        concat_bytes = size(state["c"])
        state["held"] = True  # UNetModel.forward holds the concatenation until the block returns
        run_block(block, "output", index)
        walk.free(concat_bytes)
    walk.transient(2 * size(state["c"]))  # output GroupNorm and SiLU
    return int(walk.peak)


def _conds(cfg: float) -> int:
    """Conditionings per model call: cond + uncond with CFG, cond only at cfg 1."""
    return 1 if float(cfg) == 1.0 else 2


def _window_length(frames: int, context: Any) -> int:
    """Frames per model call: the context window length, or all frames without windows."""
    if context is None:
        return frames
    return min(frames, int(context.length))


def estimate_sampler_bytes(
    model: Any,
    latent_shape: Sequence[int],
    cfg: float,
    context: Any,
    device: torch.device,
    weight_bytes: Optional[int] = None,
) -> int:
    """Peak bytes of a sampler run on ``device``: the UNet's activations for one context window (CFG batch
    included), the call's inputs and outputs, the sampler's full-video latents, and the weights when they are
    not yet on ``device`` (they are moved there for the run; ``weight_bytes`` skips recounting them)."""
    frames, channels, height, width = (int(v) for v in latent_shape)
    device = torch.device(device)
    window = _window_length(frames, context)
    batch = window * _conds(cfg)
    dtype = model.dtype
    unet = model.unet
    activations = unet_activation_bytes(unet, batch, height, width, dtype, device)
    latent_elem = channels * height * width
    call_io = 4 * batch * latent_elem * 4  # model input (+ repeat), output, guided x0 (fp32)
    text_dim = getattr(getattr(unet, "config", None), "context_dim", 768)
    call_io += batch * 77 * text_dim * _element_size(dtype)  # per-frame text embeddings of the call
    sampler_state = (6 if context is None else 8) * frames * latent_elem * 4  # x, noise, x0, d, (+ fuse sums)
    if weight_bytes is None:
        weight_bytes = _weights_to_move(unet, model.device, device, dtype)
    return int(activations + call_io + sampler_state + weight_bytes)


# --- VAE decoder --------------------------------------------------------------------------------------------


def decoder_activation_bytes(
    vae_model: Any, frames: int, height: int, width: int, dtype: torch.dtype, device: torch.device, temporal: bool
) -> int:
    """Peak activation bytes of ``AutoencoderKL.decode`` for ``[frames, z, height, width]`` latents."""
    from .models.vae import AttnBlock, ResnetBlock

    decoder: Any = vae_model.decoder
    elem = _element_size(dtype)
    walk = _Live()
    state = {"c": decoder.conv_in.in_channels, "h": height, "w": width}

    def size(c: int) -> int:
        return frames * c * state["h"] * state["w"] * elem

    def replace(c: int, scale: int = 1) -> None:
        old = size(state["c"])
        state.update(c=c, h=state["h"] * scale, w=state["w"] * scale)
        walk.alloc(size(c))
        walk.free(old)

    def resnet(block: Any) -> None:
        t_in, t_out = size(block.conv1.in_channels), size(block.conv1.out_channels)
        shortcut = t_out if block.nin_shortcut is not None else 0
        walk.transient(max(2 * t_in, t_in + t_out, 2 * t_out + shortcut))
        replace(block.conv1.out_channels)

    def temporal_conv(layer: Any) -> None:
        if temporal and layer is not None:
            walk.transient(3 * size(state["c"]))
            replace(state["c"])

    walk.alloc(size(state["c"]))  # the latent chunk
    replace(decoder.conv_in.out_channels)
    resnet(decoder.mid.block_1)
    temporal_conv(getattr(decoder.mid, "temp_conv_1", None))
    attn = getattr(decoder.mid, "attn_1", None)
    if isinstance(attn, AttnBlock):
        seq = state["h"] * state["w"]
        walk.transient(6 * size(state["c"]) + _strided_attention_bytes(frames, seq, elem))
        replace(state["c"])
    resnet(decoder.mid.block_2)
    temporal_conv(getattr(decoder.mid, "temp_conv_2", None))
    for stage in reversed(decoder.up):
        for j, block in enumerate(stage.block):
            if isinstance(block, ResnetBlock):
                resnet(block)
            temporal_conv(stage.temp_conv[j] if hasattr(stage, "temp_conv") else None)
        if hasattr(stage, "upsample"):
            walk.transient(8 * size(state["c"]))
            replace(state["c"], scale=2)
    walk.transient(2 * size(state["c"]))  # norm_out, SiLU
    return int(walk.peak)


def estimate_decode_bytes(
    vae: Any,
    latent_shape: Sequence[int],
    chunk: int,
    tile: int,
    device: torch.device,
    temporal: bool = True,
    weight_bytes: Optional[int] = None,
) -> int:
    """Peak bytes of ``VAE.decode`` (pipelines/models/vae.py) for ``latent_shape`` ``[F, C, h, w]``.

    chunk: frames decoded at once; tile: tile size in latent pixels (0 = whole frame). Counts the decoder's
    activations for one chunk (with its temporal context frames) and one tile, the float32 output video,
    the per-chunk pixel conversions and, when tiling, the blended chunk buffer.
    """
    frames, _, height, width = (int(v) for v in latent_shape)
    device = torch.device(device)
    d = vae.downscale
    use_temporal = temporal and vae.has_temporal_decoder
    radius = vae.model.decoder.temporal_radius() if use_temporal else 0
    chunk_frames = min(frames, max(1, int(chunk)))
    context_frames = min(frames, chunk_frames + 2 * radius)
    tile = int(tile)
    tiled = 0 < tile < max(height, width)
    tile_h, tile_w = (min(tile, height), min(tile, width)) if tiled else (height, width)
    activations = decoder_activation_bytes(vae.model, context_frames, tile_h, tile_w, vae.dtype, device, use_temporal)
    output = frames * height * d * width * d * 3 * 4  # the float32 IMAGE of the whole video (on the CPU)
    chunk_pixels = context_frames * 3 * height * d * width * d * 4
    conversions = 3 * chunk_pixels  # float copy, 0..1 rescale, clamp
    blend = 2 * chunk_pixels if tiled else 0  # tiled_apply's output buffer and the weighted piece
    if weight_bytes is None:
        weight_bytes = _weights_to_move(vae.model, vae.device, device, vae.dtype)
    on_device = activations + conversions + blend + weight_bytes
    if device.type == "cpu":
        return int(on_device + output)
    return int(on_device)


# --- free memory and the checks ------------------------------------------------------------------------------


def _meminfo_available() -> Optional[int]:
    """``MemAvailable`` from /proc/meminfo in bytes (None where there is no /proc)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_headroom() -> Optional[int]:
    """Bytes left under a cgroup v2 memory limit, None when unlimited or unknown."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            current = int(f.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None


def available_cpu_bytes() -> int:
    """RAM a new allocation can get: MemAvailable, capped by a cgroup limit (sysconf when there is no /proc)."""
    candidates = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    if not candidates:
        candidates = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    return min(candidates)


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device``: ComfyUI's figure inside ComfyUI, else free VRAM (plus PyTorch's cache) on
    CUDA, else available RAM."""
    from . import device as device_policy

    device = torch.device(device)
    comfy = device_policy.comfy_model_management()
    if comfy is not None:
        return int(comfy.get_free_memory(device))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return available_cpu_bytes()


def _gib(nbytes: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{nbytes / GIB:.2f} GiB"


def _largest_fitting(candidates: Sequence[Any], estimate: Callable[[Any], int], budget: float) -> Optional[Any]:
    """The first candidate (they are ordered largest first) whose estimate fits the budget."""
    for candidate in candidates:
        if estimate(candidate) <= budget:
            return candidate
    return None


def _where(device: torch.device) -> str:
    """'free VRAM on cuda:0' / 'available RAM'."""
    return "available RAM" if device.type == "cpu" else f"free memory on {device}"


def check_sampler_memory(
    model: Any,
    latent_shape: Sequence[int],
    cfg: float,
    context: Any,
    device: torch.device,
    node: str = "FrameFoldVideoSampler",
    available: Optional[int] = None,
) -> int:
    """Refuse a sampler run whose estimated peak exceeds the device's free memory; returns the estimate.

    The error names ``node``, the estimate, the free memory and a context length that fits (or, when even one
    frame per window is too much, the largest latent size that fits).
    """
    device = torch.device(device)
    budget = USABLE_FRACTION * (available_bytes(device) if available is None else available)
    weights = _weights_to_move(model.unet, model.device, device, model.dtype)
    need = estimate_sampler_bytes(model, latent_shape, cfg, context, device, weights)
    if need <= budget:
        return need
    frames, channels, height, width = (int(v) for v in latent_shape)
    window = _window_length(frames, context)
    head = (
        f"{node}: not enough memory for a {frames}x{height}x{width} latent ({window} frames per model call"
        f"{' x 2 for CFG' if _conds(cfg) == 2 else ''}): needs about {_gib(need)}, {_gib(budget)} usable of the "
        f"{_where(device)}."
    )

    def with_length(length: int) -> int:
        return estimate_sampler_bytes(model, latent_shape, cfg, _Window(length), device, weights)

    lengths = [n for n in CONTEXT_LENGTHS if n < window]
    fits = _largest_fitting(lengths, with_length, budget)
    if fits is not None:
        overlap = fits // 4
        raise MemoryPreflightError(
            f"{head} Use context windows: connect FrameFold Context Options with context_length={fits} "
            f"(context_overlap={overlap}) or less to the sampler's 'context' input."
        )
    scale = _largest_fitting(
        [s / 16 for s in range(15, 0, -1)],
        lambda s: estimate_sampler_bytes(
            model, (frames, channels, max(1, int(height * s)), max(1, int(width * s))), cfg, _Window(1), device, weights
        ),
        budget,
    )
    if scale is None:
        raise MemoryPreflightError(f"{head} Even a 1-frame window of a 1/16-size latent does not fit.")
    h, w = max(1, int(height * scale)) // 8 * 8 or 1, max(1, int(width * scale)) // 8 * 8 or 1
    raise MemoryPreflightError(
        f"{head} Even 1-frame context windows do not fit at this size: reduce the latent to at most {w}x{h} "
        f"(width x height, latent pixels: {w * 8}x{h * 8} pixels with an 8x VAE) and use context windows."
    )


@dataclass(frozen=True)
class _Window:
    """A stand-in for ContextOptions when trying context lengths."""

    length: int


def check_decode_memory(
    vae: Any,
    latent_shape: Sequence[int],
    chunk: int,
    tile: int,
    device: torch.device,
    node: str = "FrameFoldVAEDecode",
    available: Optional[int] = None,
    temporal: bool = True,
) -> int:
    """Refuse a VAE decode whose estimated peak exceeds the device's free memory; returns the estimate.

    chunk: frame_chunk; tile: tile size in latent pixels (0 = none). The error names ``node`` and a
    frame_chunk / tile_size (in pixels, as the node's widgets take them) that fits.
    """
    device = torch.device(device)
    budget = USABLE_FRACTION * (available_bytes(device) if available is None else available)
    weights = _weights_to_move(vae.model, vae.device, device, vae.dtype)

    def estimate(chunk_frames: int, tile_latent: int) -> int:
        return estimate_decode_bytes(vae, latent_shape, chunk_frames, tile_latent, device, temporal, weights)

    need = estimate(chunk, tile)
    if need <= budget:
        return need
    frames, _, height, width = (int(v) for v in latent_shape)
    d = vae.downscale
    head = (
        f"{node}: not enough memory to decode {frames} frames of {width * d}x{height * d} (frame_chunk={chunk}, "
        f"tile_size={tile * d}): needs about {_gib(need)}, {_gib(budget)} usable of the {_where(device)}."
    )
    chunks = [c for c in FRAME_CHUNKS if c < min(int(chunk), frames)]
    fits = _largest_fitting(
        chunks, lambda c: estimate_decode_bytes(vae, latent_shape, c, tile, device, temporal), budget
    )
    if fits is not None:
        raise MemoryPreflightError(f"{head} Use frame_chunk={fits} or less.")
    tiles = [t for t in TILE_SIZES_PX if t // d < max(height, width) and (tile <= 0 or t // d < tile)]
    options = [(c, t) for t in tiles for c in (min(int(chunk), frames), *FRAME_CHUNKS) if c <= frames]
    best = _largest_fitting(options, lambda ct: estimate(ct[0], ct[1] // d), budget)
    if best is not None:
        raise MemoryPreflightError(f"{head} Use tile_size={best[1]} with frame_chunk={best[0]} (or smaller).")
    output = frames * height * d * width * d * 3 * 4
    raise MemoryPreflightError(
        f"{head} No frame_chunk / tile_size fits: the decoded video alone takes {_gib(output)}; decode fewer "
        f"frames at a time (split the latent) or a smaller size."
    )
