"""VidRD iterative long-video generation ("Reuse and Diffuse", seed 003 §4.3, eq. 5-8, Algorithm 1).

A video longer than the model's frame window is generated clip by clip. Every clip has ``N`` frames
(``clip_frames``); the last ``M`` frames (``prompt_frames``) of clip ``i-1`` prompt clip ``i``, whose frame ``j``
mirrors frame ``N-1-j`` of clip ``i-1`` (frame 0 continues from the previous clip's last frame):

- eq. 5: clip 0 starts from unit Gaussian noise (or any noise prior's draw);
- eq. 6 FNR: clip ``i``'s initial noise is clip ``i-1``'s in reversed frame order;
- eq. 7 PNS: for ``j >= M`` that reversed noise is mixed with fresh noise,
  ``a/sqrt(1+a^2) * reversed + eps``, ``eps ~ N(0, 1/(1+a^2))`` (``alpha=None`` keeps plain FNR);
- eq. 8 DSG: ``z_{t-1}^{i,j} = z_{t-1}^{i-1,N-j-1}  if t > (1-beta) T + beta T j / M`` else a normal step.

**What t and T are here.** With a discrete schedule of ``S`` steps, ``T = S`` and step ``i`` (0-based, from
``sigmas[i]`` to ``sigmas[i+1]``) is the step from ``z_t`` to ``z_{t-1}`` with ``t = S - i``; so ``t`` runs
``S .. 1`` like the paper's ``T .. 1``. Prompt frame ``j`` is therefore replaced after step ``i`` exactly when
``S - i > (1-beta) S + beta S j / M`` (equivalently ``i < beta S (1 - j/M)``): with beta 1 frame 0 follows the
previous clip at every step and frame ``j`` for the first ``S (1 - j/M)`` steps; with beta 0 never. Counting in
steps makes the rule independent of the timestep spacing (leading / trailing / karras ...). Both clips use the
same ``sigmas``, so the recorded sigma-space states are copied as they are.

**Output assembly.** ``overlap="drop"`` leaves clip ``i``'s first ``M`` frames (the mirrored prompt frames) out of
the output, so each later clip adds ``N - M`` frames; ``overlap="keep"`` concatenates whole clips (``N`` each),
as the paper's "concatenating the continuous video clips" reads literally; ``overlap="drop_first"`` leaves out only
clip ``i``'s frame 0, the mirror axis (a copy of clip ``i-1``'s last frame under DSG), so each later clip adds
``N - 1`` frames and the output runs ``..., z^{i-1,N-2}, z^{i-1,N-1}, z^{i,1} ~ z^{i-1,N-2}, ...``: the motion
turns back at the join by one ordinary frame step. Why this matters: the mirrored prompt frames run backwards in
time, so with "drop" the first kept frame ``z^{i,M}`` continues from ``z^{i,M-1} ~ z^{i-1,N-M}``, about ``M`` frame
steps away from the last output frame ``z^{i-1,N-1}`` (a visible jump); with "keep" frame 0 repeats the previous
frame (a freeze). See :data:`DEFAULT_OVERLAP`.

**Memory.** One clip's activations at a time, the previous clip's initial noise (``N`` frames), and the recorded
trajectory of its last ``M`` frames over the guided steps only (``[guided_steps, M, C, h, w]``), besides the
output latent itself.

**Randomness**, all from one ``generator`` in this order: clip 0's noise (unless given), then for every later
clip its PNS draw, then the sampler's own noise (ancestral samplers / DDIM eta > 0) as it runs.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch

from ..noise import frame_noise_reversal, past_dependent_noise
from ..options import OptionError, check_choice, check_range
from .freeinit import FreeInitOptions, PassRunner, progress_stage, sample_with_freeinit
from .hooks import HookLike, SamplerHook
from .samplers import Denoiser, check_sampler, sample

Observer = Callable[[int, int, float, torch.Tensor], None]

OVERLAP_MODES = ("drop", "keep", "drop_first")
# seam_ratio 1 = a join as visible as an ordinary frame step, << 1 a freeze, >> 1 a jump. bench/long_video.py with the
# long-video example's settings (embedded default model, session-7 weights, 64 frames, 20 DDIM steps trailing, cfg 2,
# 8 prompt x seed pairs, 32 joins), M 4, alpha 4: the paper's beta 0.4 with drop: median 3.94 (1.75..8.55); beta 0.7
# with drop_first: median 0.79 (0.27..1.32); independent clips 5.63; keep repeats a frame (ratio 0.00 at beta 1).
# GP proxy (rho 0.95, 2 pairs): drop 2.14, drop_first 1.01. drop_first is the long-video example's setting; "drop"
# stays the default so that the paper's defaults give the paper's N - M new frames per clip and existing workflows
# keep their output.
DEFAULT_OVERLAP = "drop"

# float tolerance for eq. 8's strict inequality (beta, j/M are decimals such as 0.4)
_EPS = 1e-9


@dataclass(frozen=True)
class VidRDOptions:
    """VidRD settings: clip length N, prompt frames M, PNS alpha (None = FNR only), DSG beta, output assembly."""

    clip_frames: int = 16
    prompt_frames: int = 4
    alpha: Optional[float] = 4.0
    beta: float = 0.4
    overlap: str = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        check_range("clip_frames", self.clip_frames, 1)
        if not 0 <= self.prompt_frames < self.clip_frames:
            raise OptionError(
                "prompt_frames", f"a value in [0, clip_frames) = [0, {self.clip_frames}), got {self.prompt_frames}"
            )
        if self.alpha is not None:
            check_range("alpha", self.alpha, 0.0)
        check_range("beta", self.beta, 0.0, 1.0)
        check_choice("overlap", self.overlap, OVERLAP_MODES)

    @property
    def new_frames_per_clip(self) -> int:
        """Output frames each clip after the first adds."""
        if self.overlap == "drop":
            return self.clip_frames - self.prompt_frames
        if self.overlap == "drop_first":
            return self.clip_frames - min(1, self.prompt_frames)
        return self.clip_frames


@dataclass
class LongVideoResult:
    """The generated latent and bookkeeping: join indices (first output frame of every later clip), clip count,
    and the largest recorded DSG trajectory shape (for memory checks)."""

    latent: torch.Tensor
    joins: List[int] = field(default_factory=list)
    clips: int = 0
    recorded_shape: Tuple[int, ...] = ()

    def note_recording(self, states: Sequence[torch.Tensor]) -> None:
        """Keep the shape of the largest recorded trajectory (``states``: list of ``[M, C, h, w]``)."""
        if not states:
            return
        shape = (len(states), *states[0].shape)
        if not self.recorded_shape or shape[0] * shape[1] > self.recorded_shape[0] * self.recorded_shape[1]:
            self.recorded_shape = shape


def dsg_guided(steps: int, prompt_frames: int, beta: float) -> torch.Tensor:
    """Eq. 8 as a bool table ``[steps, M]``: True where prompt frame j copies the previous clip after step i.

    ``t = steps - i``, ``T = steps``; guided iff ``t > (1 - beta) T + beta T j / M``.
    """
    table = torch.zeros(steps, prompt_frames, dtype=torch.bool)
    for i in range(steps):
        t = steps - i
        for j in range(prompt_frames):
            threshold = (1.0 - beta) * steps + beta * steps * j / prompt_frames
            table[i, j] = t > threshold + _EPS
    return table


def clip_count(total_frames: int, options: VidRDOptions) -> int:
    """Clips needed to produce at least ``total_frames`` output frames."""
    if total_frames < 1:
        raise OptionError("total_frames", f"a value >= 1, got {total_frames}")
    extra = max(0, total_frames - options.clip_frames)
    return 1 + -(-extra // options.new_frames_per_clip)


def clip_layout(index: int, options: VidRDOptions) -> Tuple[int, int, List[int]]:
    """For clip ``index``: ``(first_kept_frame, output_start, positions)`` where ``positions[j]`` is the output frame
    clip frame j shows (a dropped prompt frame shows the frame it mirrors)."""
    n, m = options.clip_frames, options.prompt_frames
    if index == 0:
        return 0, 0, list(range(n))
    if options.overlap == "keep" or (options.overlap == "drop_first" and m == 0):
        start = index * n
        return 0, start, [start + j for j in range(n)]
    if options.overlap == "drop_first":
        # frame 0 is the mirror axis (it copies the previous clip's last frame); frames 1.. follow it
        start = n + (index - 1) * (n - 1)
        return 1, start, [start - 1] + [start + j - 1 for j in range(1, n)]
    start = n + (index - 1) * (n - m)
    positions = [start - 1 - j for j in range(m)] + [start + (j - m) for j in range(m, n)]
    return m, start, positions


def next_clip_noise(previous: torch.Tensor, generator: torch.Generator, options: VidRDOptions) -> torch.Tensor:
    """Initial noise of the next clip from the previous clip's (eq. 6 FNR, or eq. 7 PNS when alpha is set)."""
    if options.alpha is None:
        return frame_noise_reversal(previous)
    return past_dependent_noise(previous, generator, options.prompt_frames, options.alpha)


class PromptFrameRecorder(SamplerHook):
    """Records the last M frames, reversed (slot j = frame N-1-j), after every step that guides at least one
    prompt frame (``guided`` from :func:`dsg_guided`): ``states[i]`` is ``[M, C, h, w]`` after step ``i``."""

    def __init__(self, guided: torch.Tensor, clip_frames: int):
        m = guided.shape[1]
        self.recorded_steps = int(guided.any(dim=1).sum())
        self.order = torch.arange(clip_frames - 1, clip_frames - 1 - m, -1)
        self.states: List[torch.Tensor] = []

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Store the reversed prompt frames while steps are guided."""
        if i < self.recorded_steps:
            self.states.append(x.index_select(0, self.order.to(x.device)).clone())
        return None


class DsgReplay(SamplerHook):
    """Eq. 8: after step i, prompt frames j with ``guided[i, j]`` take the previous clip's recorded state."""

    def __init__(self, guided: torch.Tensor, states: Sequence[torch.Tensor]):
        self.guided = guided
        self.states = states

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Copy the guided prompt frames from the recorded trajectory."""
        if i >= self.guided.shape[0] or not bool(self.guided[i].any()):
            return None
        frames = torch.nonzero(self.guided[i]).flatten().to(x.device)
        x = x.clone()
        x[frames] = self.states[i].index_select(0, frames).to(x.dtype)
        return x


class ClipObserver(SamplerHook):
    """Shows clip ``index``'s start state (step -1) and its state after every step to ``observer``."""

    def __init__(self, observer: Observer, index: int):
        self.observer = observer
        self.index = index

    def start(self, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Report the start state as step -1."""
        self.observer(self.index, -1, sigma, x)
        return None

    def step(self, i: int, sigma: float, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Report the state after step ``i``."""
        self.observer(self.index, i, sigma, x)
        return None


def _sample_clip(
    run: PassRunner,
    noise: torch.Tensor,
    index: int,
    clips: int,
    steps: int,
    generator: torch.Generator,
    freeinit: Optional[FreeInitOptions],
    alphas_cumprod: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Clip ``index`` sampled by ``run`` from ``noise``: FreeInit passes for clip 0 when asked, else one pass; all
    passes of all clips fill one progress bar. Returns ``(latent, initial noise of the last pass)``."""
    passes = freeinit.iterations if freeinit is not None else 1
    grand_total = steps * (clips + passes - 1)
    if index == 0 and freeinit is not None and freeinit.iterations > 1:
        if alphas_cumprod is None:
            raise ValueError("FreeInit needs the model's alphas_cumprod")
        return sample_with_freeinit(
            run, noise, alphas_cumprod, generator, freeinit, steps=steps, progress_total=grand_total
        )
    with progress_stage(steps * (index + passes - 1), grand_total):
        return run(noise), noise


def sample_long_video(
    denoiser: Optional[Denoiser],
    frame_shape: Tuple[int, ...],
    total_frames: int,
    sigmas: torch.Tensor,
    *,
    generator: torch.Generator,
    options: VidRDOptions = VidRDOptions(),
    sampler: str = "ddim",
    first_noise: Optional[torch.Tensor] = None,
    denoiser_for_clip: Optional[Callable[[List[int]], Denoiser]] = None,
    first_clip_hooks: Sequence[HookLike] = (),
    freeinit: Optional[FreeInitOptions] = None,
    alphas_cumprod: Optional[torch.Tensor] = None,
    observer: Optional[Observer] = None,
    **sampler_options: Any,
) -> LongVideoResult:
    """Generate ``total_frames`` latent frames clip by clip with FNR/PNS noise and DSG replay.

    denoiser: ``denoiser(x, sigma) -> x0`` for one clip ``[N, C, h, w]`` (conditioning baked in).
    frame_shape: ``(C, h, w)``. sigmas: the per-clip schedule (``[steps + 1]``), identical for all clips.
    first_noise: clip 0's unit noise ``[N, C, h, w]`` (default: i.i.d. from ``generator``).
    denoiser_for_clip: optional ``f(positions: list[int]) -> denoiser`` for per-frame prompts (positions are the
    output frames the clip's frames show, clamped to the output); overrides ``denoiser``.
    first_clip_hooks: extra sampler hooks for clip 0 (image-to-video holds frame 0 with a
    :class:`~.hooks.FrameHold`). freeinit: :class:`~.freeinit.FreeInitOptions` for clip 0 (needs
    ``alphas_cumprod``). observer: optional ``f(clip_index, step, sigma, x)`` that sees every clip's sigma-space
    start state (step -1) and its state after every step (after the DSG replay); it must not modify ``x``.
    Returns a :class:`LongVideoResult`.
    """
    check_sampler(sampler)
    n = options.clip_frames
    steps = len(sigmas) - 1
    clips = clip_count(total_frames, options)
    guided = dsg_guided(steps, options.prompt_frames, options.beta)
    if first_noise is None:
        first_noise = torch.randn((n, *frame_shape), generator=generator, device=generator.device)
    if tuple(first_noise.shape) != (n, *frame_shape):
        raise ValueError(f"first_noise must be {(n, *frame_shape)}, got {tuple(first_noise.shape)}")

    out = torch.empty((total_frames, *frame_shape), dtype=torch.float32)
    result = LongVideoResult(out, clips=clips)
    noise: torch.Tensor = first_noise
    states: List[torch.Tensor] = []
    for index in range(clips):
        kept_from, start, positions = clip_layout(index, options)
        if denoiser_for_clip is not None:
            denoiser = denoiser_for_clip([min(p, total_frames - 1) for p in positions])
        if index > 0:
            noise = next_clip_noise(noise, generator, options)
            if start < total_frames:
                result.joins.append(start)
        hooks: List[HookLike] = [DsgReplay(guided, states) if states else None]
        hooks += first_clip_hooks if index == 0 else []
        record_next = index + 1 < clips and bool(guided.any())
        recorders: List[PromptFrameRecorder] = []

        def run(initial, hooks=hooks, recorders=recorders, clip_denoiser=denoiser, index=index):
            # a fresh recorder per pass: with FreeInit only the last pass's trajectory is kept
            recorder = PromptFrameRecorder(guided, n) if record_next else None
            recorders[:] = [recorder] if recorder is not None else []
            watch = ClipObserver(observer, index) if observer is not None else None
            all_hooks = [*hooks, recorder, watch]
            return sample(
                sampler, clip_denoiser, initial, sigmas, generator=generator, hooks=all_hooks, **sampler_options
            )

        latent, noise = _sample_clip(run, noise, index, clips, steps, generator, freeinit, alphas_cumprod)
        states = recorders[0].states if recorders else []
        result.note_recording(states)
        stop = min(total_frames, start + n - kept_from)
        out[start:stop] = latent[kept_from : kept_from + stop - start].to(torch.float32).cpu()
    return result
