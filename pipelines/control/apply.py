"""Applying ControlNets to video sampling (seed 001 §4.3 structure preservation; Advanced-ControlNet's options).

A :class:`ControlApplication` is one ControlNet with its control images, attached to a conditioning
(``Conditioning.control``, a tuple: several stack and their residuals add up). Options:

* images: one per frame, or fewer with ``frame_indices`` (keyframe / sparse control): frames without an
  image get no residuals at all;
* strength: residual scale (0 = exactly the uncontrolled output);
* start / end percent of the denoising schedule (ComfyUI's convention: percent p is the noise level of
  training timestep ``(1 - p) * (T - 1)``; control runs on the steps whose sigma lies in that range);
* mask: MASK ``[1 or K, H, W]`` scaling the residuals spatially (per image / frame);
* resize: control images are fitted to the latent's pixel size by ``crop`` (cover, centre crop), ``pad``
  (fit, centre, black borders) or ``stretch``.

:class:`ConditioningControl` is the ``control`` hook of :class:`~pipelines.sampling.guidance.GuidedDenoiser`:
for each model call (one context window of cond + uncond frames) it runs every active ControlNet on the
frames of that window that have an image, so control follows context windows, and a frame's residuals
depend only on its own latent, timestep, prompt and control image.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..models.bundle import Conditioning
from ..models.controlnet import ControlNet, Residuals, scale_residuals

RESIZE_MODES = ("crop", "pad", "stretch")


def fit_images(images: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """``[N, C, H, W]`` resized to ``[N, C, height, width]``: crop (cover + centre crop), pad (fit + centre on
    zeros) or stretch. Bilinear with antialiasing."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    n, c, h, w = images.shape
    if (h, w) == (height, width):
        return images
    if mode == "stretch":
        return F.interpolate(images, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    scale = max(height / h, width / w) if mode == "crop" else min(height / h, width / w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = F.interpolate(images, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
    if mode == "crop":
        top, left = (sh - height) // 2, (sw - width) // 2
        return resized[:, :, top : top + height, left : left + width]
    out = images.new_zeros(n, c, height, width)
    top, left = (height - sh) // 2, (width - sw) // 2
    out[:, :, top : top + sh, left : left + sw] = resized
    return out


def percent_to_sigma(percent: float, sigmas_train: torch.Tensor) -> float:
    """Noise level at ``percent`` of the schedule: inf at 0, 0 at 1, else the sigma of timestep (1-p)(T-1)."""
    if percent <= 0.0:
        return float("inf")
    if percent >= 1.0:
        return 0.0
    from ..sampling.schedules import sigma_at_timestep

    return float(sigma_at_timestep((1.0 - percent) * (len(sigmas_train) - 1), sigmas_train))


@dataclass(frozen=True, eq=False)
class ControlApplication:
    """One ControlNet applied with its control images (see the module docstring for the options).

    images: IMAGE ``[K, H, W, C]`` in 0..1 (RGB; alpha dropped). frame_indices: None (one image per frame, or
    one image for every frame when K is 1) or K distinct frame indices >= 0.
    """

    controlnet: ControlNet
    images: torch.Tensor
    frame_indices: Optional[Tuple[int, ...]] = None
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    mask: Optional[torch.Tensor] = None
    resize: str = "crop"
    _cache: Dict[tuple, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3, 4):
            raise ValueError("control images must be an IMAGE [K, H, W, C] in 0..1")
        k = self.images.shape[0]
        if self.frame_indices is not None:
            indices = tuple(int(i) for i in self.frame_indices)
            if len(indices) != k or len(set(indices)) != k or min(indices) < 0:
                raise ValueError(
                    f"frame_indices must be {k} distinct frame numbers >= 0 (one per image), got {indices}"
                )
            object.__setattr__(self, "frame_indices", indices)
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise ValueError(
                f"need 0 <= start_percent <= end_percent <= 1, got {self.start_percent}, {self.end_percent}"
            )
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.mask is not None:
            if self.mask.ndim != 3 or self.mask.shape[0] not in (1, k):
                raise ValueError(f"control mask must be a MASK [1 or {k}, H, W], got {tuple(self.mask.shape)}")

    # -- which frames get which image ----------------------------------------------------------------

    def image_index(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """For each frame in ``frames`` (indices into a ``num_frames`` video) its image index, or -1."""
        k = self.images.shape[0]
        frames = frames.to("cpu", torch.long)
        if self.frame_indices is None:
            if k == 1:
                return torch.zeros_like(frames)
            if k != num_frames:
                raise ValueError(
                    f"ControlNet: {k} control images for a {num_frames}-frame video; give one image per frame, "
                    "one image for all frames, or frame indices (keyframe control)"
                )
            return frames.clone()
        if max(self.frame_indices) >= num_frames:
            raise ValueError(f"ControlNet: frame index {max(self.frame_indices)} outside a {num_frames}-frame video")
        lookup = torch.full((num_frames,), -1, dtype=torch.long)
        lookup[torch.tensor(self.frame_indices)] = torch.arange(k)
        return lookup[frames]

    def for_positions(self, positions: Sequence[int], num_frames: int) -> Optional["ControlApplication"]:
        """This control for a clip showing frames ``positions`` of a ``num_frames`` video (VidRD clips);
        None when no frame of the clip has an image."""
        index = self.image_index(torch.as_tensor(list(positions)), num_frames)
        guided = (index >= 0).nonzero().flatten()
        if len(guided) == 0:
            return None
        picks = index[guided]
        mask = None
        if self.mask is not None:
            mask = self.mask if self.mask.shape[0] == 1 else self.mask[picks]
        local = tuple(int(i) for i in guided)
        return ControlApplication(
            self.controlnet,
            self.images[picks],
            local,
            self.strength,
            self.start_percent,
            self.end_percent,
            mask,
            self.resize,
        )

    # -- when ------------------------------------------------------------------------------------------

    def active_at(self, sigma: float, sigmas_train: torch.Tensor) -> bool:
        """True when this control runs at noise level ``sigma`` (inside the start/end range, strength > 0)."""
        if self.strength == 0.0:
            return False
        high = percent_to_sigma(self.start_percent, sigmas_train)
        low = percent_to_sigma(self.end_percent, sigmas_train)
        return low <= float(sigma) <= high

    # -- what --------------------------------------------------------------------------------------------

    def hints(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Control images ``[K, 3, height, width]`` fitted with the resize mode (cached per size)."""
        key = ("hint", height, width, str(device), dtype)
        if key not in self._cache:
            rgb = self.images[..., :3].float()
            if rgb.shape[-1] == 1:
                rgb = rgb.expand(*rgb.shape[:-1], 3)
            fitted = fit_images(rgb.permute(0, 3, 1, 2), height, width, self.resize)
            self._cache[key] = fitted.to(device=device, dtype=dtype)
        return self._cache[key]

    def mask_maps(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Optional[torch.Tensor]:
        """The mask ``[1 or K, 1, height, width]`` fitted like the images (padding is unmasked: 0), or None."""
        if self.mask is None:
            return None
        key = ("mask", height, width, str(device), dtype)
        if key not in self._cache:
            fitted = fit_images(self.mask.float()[:, None], height, width, self.resize)
            self._cache[key] = fitted.to(device=device, dtype=dtype)
        return self._cache[key]

    def residuals(
        self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, frames: torch.Tensor, num_frames: int
    ) -> Optional[Residuals]:
        """Scaled (and masked) residuals ``[len(frames), ...]`` for model inputs ``x`` of the frames ``frames``;
        zero for frames without an image; None when no frame has one."""
        index = self.image_index(frames, num_frames)
        guided = (index >= 0).nonzero().flatten()
        if len(guided) == 0:
            return None
        model = self.controlnet.model
        scale = model.config.downscale
        hints = self.hints(x.shape[-2] * scale, x.shape[-1] * scale, x.device, x.dtype)
        picks = index[guided].to(x.device)
        rows = guided.to(x.device)
        ctx = context if context.shape[0] == 1 else context.index_select(0, rows)
        device, dtype = self.controlnet.device, self.controlnet.dtype
        with torch.no_grad():
            out = model(
                x.index_select(0, rows).to(device, dtype),
                timesteps.index_select(0, rows).to(device),
                ctx.to(device, dtype),
                hints.index_select(0, picks).to(device, dtype),
            )
        out = {"down": [r.to(x.device) for r in out["down"]], "mid": out["mid"].to(x.device)}  # type: ignore[union-attr]
        mask = self.mask_maps(hints.shape[-2], hints.shape[-1], x.device, x.dtype)
        if mask is not None and mask.shape[0] > 1:
            mask = mask.index_select(0, picks)
        out = scale_residuals(out, self.strength, mask)
        if len(guided) == x.shape[0]:
            return {"down": [r.to(x.dtype) for r in out["down"]], "mid": out["mid"].to(x.dtype)}  # type: ignore[union-attr]
        return _scatter_rows(out, rows, x.shape[0], x.dtype)


def _scatter_rows(residuals: Residuals, rows: torch.Tensor, count: int, dtype: torch.dtype) -> Residuals:
    """Residuals of some rows placed into zeros for all ``count`` rows."""

    def place(r: torch.Tensor) -> torch.Tensor:
        full = r.new_zeros((count, *r.shape[1:]), dtype=dtype)
        full.index_copy_(0, rows, r.to(dtype))
        return full

    return {"down": [place(r) for r in residuals["down"]], "mid": place(residuals["mid"])}  # type: ignore[union-attr,arg-type]


def add_residuals(a: Optional[Residuals], b: Optional[Residuals]) -> Optional[Residuals]:
    """Sum of two residual sets (None is nothing)."""
    if a is None:
        return b
    if b is None:
        return a
    return {"down": [x + y for x, y in zip(a["down"], b["down"])], "mid": a["mid"] + b["mid"]}  # type: ignore[operator,arg-type]


def _zeros_like(r: Residuals) -> Residuals:
    """Zero residuals shaped like ``r``."""
    return {"down": [torch.zeros_like(x) for x in r["down"]], "mid": torch.zeros_like(r["mid"])}  # type: ignore[union-attr,arg-type]


class ConditioningControl:
    """The GuidedDenoiser ``control`` hook built from the ``control`` of each conditioning (cond, then uncond).

    ``applied`` records every ControlNet run as ``(call, sigma, conditioning index, application index)``
    (``call`` counts the hook's calls), for tests and benchmarks.
    """

    def __init__(self, per_conditioning: Sequence[Tuple[ControlApplication, ...]], sigmas_train: torch.Tensor):
        self.per_conditioning = [tuple(c) for c in per_conditioning]
        self.sigmas_train = sigmas_train
        self.applied: List[Tuple[int, float, int, int]] = []
        self.calls = 0

    def __call__(
        self,
        frames: torch.Tensor,
        n_conds: int,
        *,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        sigma: float,
        num_frames: int,
    ) -> Optional[Residuals]:
        """Residuals for one model call on ``x [n_conds * len(frames), ...]`` (cond rows first), or None."""
        if n_conds != len(self.per_conditioning):
            raise ValueError(f"control built for {len(self.per_conditioning)} conditionings, called with {n_conds}")
        count, call = len(frames), self.calls
        self.calls += 1
        parts: List[Optional[Residuals]] = []
        for ci, applications in enumerate(self.per_conditioning):
            rows = slice(ci * count, (ci + 1) * count)
            ctx = context if context.shape[0] == 1 else context[rows]
            total: Optional[Residuals] = None
            for ai, application in enumerate(applications):
                if not application.active_at(sigma, self.sigmas_train):
                    continue
                r = application.residuals(x[rows], timesteps[rows], ctx, frames, num_frames)
                if r is not None:
                    self.applied.append((call, float(sigma), ci, ai))
                    total = add_residuals(total, r)
            parts.append(total)
        present = [p for p in parts if p is not None]
        if not present:
            return None
        filled = [p if p is not None else _zeros_like(present[0]) for p in parts]
        return {
            "down": [torch.cat(level) for level in zip(*(p["down"] for p in filled))],  # type: ignore[misc]
            "mid": torch.cat([p["mid"] for p in filled]),  # type: ignore[misc]
        }


def control_from_conditionings(conditionings: Sequence, sigmas_train: torch.Tensor) -> Optional[ConditioningControl]:
    """The control hook for these conditionings (cond first), or None when none carries a ControlNet."""
    per = [tuple(getattr(c, "control", ()) or ()) for c in conditionings]
    if not any(per):
        return None
    return ConditioningControl(per, sigmas_train)


def with_control(conditioning: Conditioning, application: ControlApplication) -> Conditioning:
    """A copy of ``conditioning`` with ``application`` stacked on its ControlNets."""
    import dataclasses

    return dataclasses.replace(conditioning, control=tuple(getattr(conditioning, "control", ())) + (application,))


def control_for_clip(conditioning: Conditioning, positions: Sequence[int], num_frames: int) -> Conditioning:
    """``conditioning`` with its ControlNets restricted to a clip showing ``positions`` (VidRD)."""
    import dataclasses

    control = tuple(getattr(conditioning, "control", ()) or ())
    if not control:
        return conditioning
    clipped = tuple(a for a in (app.for_positions(positions, num_frames) for app in control) if a is not None)
    return dataclasses.replace(conditioning, control=clipped)
