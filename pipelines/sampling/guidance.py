"""Classifier-free guidance: turn a DiffusionModel + conditionings into a ``denoise(x, sigma) -> x0`` callable.

Cond and uncond run batched in ONE model call (cond frames first, then uncond frames); cfg == 1 skips uncond.
Text embeddings ``[1, L, D]`` are broadcast to every frame, ``[F, L, D]`` are per-frame prompts sliced with the
frames of each window. Cond and uncond of different lengths L (long prompts encoded in 77-token chunks) are
repeated chunk-wise to their least common multiple, as ComfyUI does; lengths that are not multiples of a
common chunk size are an error.
"""

import math
from typing import Any, Callable, Optional, Tuple

import torch

from ..control.apply import control_from_conditionings
from ..models.bundle import Conditioning, DiffusionModel
from . import context as context_windows
from .context import ContextOptions
from .schedules import alphas_cumprod_from_config, denoised_from_output, timestep_at_sigma, to_model_input, train_sigmas


def match_lengths(embeds_a: torch.Tensor, embeds_b: torch.Tensor, chunk: int = 77) -> Tuple[torch.Tensor, torch.Tensor]:
    """Repeat ``[N, L, D]`` embeddings along L to a common length (lcm of the two), chunk-wise like ComfyUI."""
    la, lb = embeds_a.shape[1], embeds_b.shape[1]
    if la == lb:
        return embeds_a, embeds_b
    if la % chunk or lb % chunk:
        raise ValueError(
            f"cannot batch conditionings of token lengths {la} and {lb}: "
            f"both must be multiples of {chunk} (encode long prompts in {chunk}-token chunks)"
        )
    common = la * lb // math.gcd(la, lb)
    return embeds_a.repeat(1, common // la, 1), embeds_b.repeat(1, common // lb, 1)


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2023, eq. 15-16): match the std of the guided prediction to the cond one.

    The std is taken over the whole window (all frames, channels, pixels), i.e. per video.
    """
    if phi == 0:
        return guided
    rescaled = guided * (cond.std() / guided.std())
    return rescaled * phi + guided * (1 - phi)


def frame_embeds(embeds: torch.Tensor, frames: torch.Tensor, num_frames: int, which: str) -> torch.Tensor:
    """Embeddings ``[len(frames), L, D]`` for the given frame indices from ``[1 or F, L, D]``."""
    if embeds.dim() != 3:
        raise ValueError(f"{which} conditioning embeds must be [1 or F, L, D], got shape {tuple(embeds.shape)}")
    if embeds.shape[0] == 1:
        return embeds.expand(len(frames), -1, -1)
    if embeds.shape[0] == num_frames:
        return embeds.index_select(0, frames.to(embeds.device))
    raise ValueError(
        f"{which} conditioning has {embeds.shape[0]} per-frame prompts but the latent has "
        f"{num_frames} frames (expected 1 or {num_frames})"
    )


class GuidedDenoiser:
    """``denoise(x, sigma) -> x0`` for a :class:`~pipelines.models.bundle.DiffusionModel` with CFG.

    model: called as ``model(x_vp[B*f], t[B*f], context[B*f, L, D], num_frames=f, control=...)``.
    positive / negative: :class:`~pipelines.models.bundle.Conditioning` (negative may be None when cfg == 1).
    guidance_rescale: Lin et al.'s phi in [0, 1]. context: optional ContextOptions (windows inside this call).
    control: optional ``control(frames, num_conds, *, x, timesteps, context, sigma, num_frames) -> object``
    passed as the UNet's ``control=`` for a window (``frames`` are the window's frame indices, ``x``,
    ``timesteps``, ``context`` the model inputs of the call; ``context.slice_frames`` slices dicts of
    per-frame tensors). Without it, ControlNets attached to the conditionings (``Conditioning.control``)
    build it (``pipelines.control.apply``).
    """

    def __init__(
        self,
        model: DiffusionModel,
        positive: Conditioning,
        negative: Optional[Conditioning] = None,
        cfg: float = 7.5,
        *,
        guidance_rescale: float = 0.0,
        context: Optional[ContextOptions] = None,
        control: Optional[Callable[..., Any]] = None,
    ):
        if cfg != 1.0 and negative is None:
            raise ValueError("a negative conditioning is required when cfg != 1")
        self.model = model
        self.cfg = float(cfg)
        self.guidance_rescale = float(guidance_rescale)
        self.context = context
        self.control = control
        self.prediction_type = model.schedule.prediction_type
        self.sigmas_train = train_sigmas(alphas_cumprod_from_config(model.schedule))
        if self.cfg == 1.0 or negative is None:
            conds = [positive.embeds]
        else:
            conds = list(match_lengths(positive.embeds, negative.embeds))
        self.embeds = conds
        if control is None:
            used = [positive] if len(conds) == 1 else [positive, negative]
            self.control = control_from_conditionings(used, self.sigmas_train)
        self.calls = 0  # model calls made, for tests and benchmarks

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """x0 prediction for sigma-space ``x [F, C, h, w]`` at noise level ``sigma``."""
        num_frames = x.shape[0]
        if self.context is None:
            frames = torch.arange(num_frames, device=x.device)
            return self.denoise_frames(x, sigma, frames, num_frames)
        return context_windows.denoise_in_windows(
            lambda xw, s, frames: self.denoise_frames(xw, s, frames, num_frames), x, sigma, self.context
        )

    def denoise_frames(self, x: torch.Tensor, sigma: float, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x0 for the frames ``frames`` (``x`` holds just those frames): one batched cond/uncond model call."""
        device, dtype = self.model.device, self.model.dtype
        count, n_conds = x.shape[0], len(self.embeds)
        x_in = to_model_input(x, sigma).to(device=device, dtype=dtype)
        t = float(timestep_at_sigma(sigma, self.sigmas_train))
        timesteps = torch.full((count * n_conds,), t, device=device, dtype=torch.float32)
        ctx = torch.cat(
            [
                frame_embeds(e, frames, num_frames, which).to(device=device, dtype=dtype)
                for e, which in zip(self.embeds, ("positive", "negative"))
            ]
        )
        x_in = x_in.repeat(n_conds, 1, 1, 1)
        control = None
        if self.control is not None:
            inputs = dict(x=x_in, timesteps=timesteps, context=ctx, sigma=float(sigma), num_frames=num_frames)
            control = self.control(frames, n_conds, **inputs)
        with torch.no_grad():
            out = self.model(x_in, timesteps, ctx, num_frames=count, control=control)
        self.calls += 1
        out = out.to(x.dtype)
        if n_conds == 1:
            guided = out
        else:
            cond, uncond = out[:count], out[count:]
            guided = rescale_guidance(uncond + (cond - uncond) * self.cfg, cond, self.guidance_rescale)
        return denoised_from_output(x, guided, sigma, self.prediction_type)


def build_denoiser(
    model: DiffusionModel,
    positive: Conditioning,
    negative: Optional[Conditioning] = None,
    cfg: float = 7.5,
    **options: Any,
) -> GuidedDenoiser:
    """Shorthand for :class:`GuidedDenoiser` (options: guidance_rescale, context, control)."""
    return GuidedDenoiser(model, positive, negative, cfg, **options)
