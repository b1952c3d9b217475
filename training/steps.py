"""Training the embedded default model ("framefold-tiny") on procedural videos.

Stages, all on infinite random data from :mod:`pipelines.synthetic`:

1. **VAE** (:func:`vae_step`): a small :class:`AutoencoderKL` (64x64 -> 16x16x4) trained on random 32x32
   crops of frames (the network is convolutional, so crops cost a quarter of full frames) with L1 + MSE
   and a small KL term; now and then a batch of full frames for the middle attention.
2. **Text** (:func:`text_alignment_step`, optional, used for the shipped weights): the text encoder is
   trained CLIP-style against a small training-only video encoder (:class:`TextVideoAligner`), so that its
   padding tokens (what cross-attention mostly reads) carry every caption word, the motion words included;
   it then stays frozen, as SD's CLIP does. Without it the motion words never reach the UNet.
3. **Diffusion** (:func:`diffusion_step`): the same UNet + AnimateDiff motion module classes as the real
   path, and a small CLIP text transformer over a word vocabulary (trained jointly when there was no text
   stage; then the motion words end up ignored). Epsilon prediction on SD's scaled_linear schedule (or
   v-prediction with zero terminal SNR), one timestep per clip (optionally a share of the clips from the
   top timesteps, where only the caption tells the motion; optionally t = T steps against the mean of
   several clips per caption, :func:`terminal_mean_step`), min-SNR-5 loss weighting, offset noise (so the
   background level cannot be read from the noise mean the schedule leaks at t = T), and 10% empty
   captions for classifier-free guidance. A first phase trains the image model alone (no motion module) on
   single frames of many different clips — cheap diversity for colours, shapes and backgrounds — then the
   video phase trains on clips, with every third step still an image step (joint image-video training, as
   in VideoLDM / Imagen Video: the frames of 2 clips carry only 2 captions, and image steps keep the text
   conditioning from drifting while the motion module learns).

The result is one FrameFold checkpoint (SD single-file key layout + configs in metadata, written by
:func:`pipelines.loading.checkpoint.save_framefold_checkpoint`) and one motion module file (released
AnimateDiff key layout, :func:`pipelines.loading.motion.save_motion_module`).

All randomness is seeded per step (``seed``, ``step``), so a resumed run draws the same data as an
uninterrupted one.
"""

import copy
import math
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..pipelines import synthetic
from ..pipelines.models.bundle import ScheduleConfig


@dataclass
class TinyConfig:
    """Sizes of every part of the tiny model (dicts of constructor arguments)."""

    vae: Dict = field(default_factory=lambda: dict(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=8))
    unet: Dict = field(
        default_factory=lambda: dict(
            model_channels=32,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_levels=(1,),
            num_heads=2,
            context_dim=64,
            norm_groups=16,
        )
    )
    motion: Dict = field(
        default_factory=lambda: dict(
            block_channels=(32, 64), layers_per_block=1, pe_length=16, num_heads=4, norm_groups=16
        )
    )
    text: Dict = field(
        default_factory=lambda: dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_positions=77)
    )
    # SD's scaled_linear schedule with epsilon prediction (session 1's weights). The training script
    # switches to v-prediction + zero terminal SNR (--prediction, --zero-terminal-snr), as the shipped
    # session-4 weights use.
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


def deep_config() -> TinyConfig:
    """The tiny config with a third UNet level (latent 16x16, 8x8, 4x4) and motion modules at all three.

    At 4x4 a whole clip's travel is about 2 latent pixels, which per-pixel temporal attention can follow;
    at 16x16 it is about 8. Tried in session 2 (27 minutes of video training): not better yet.
    """
    config = TinyConfig()
    config.unet = dict(config.unet, channel_mult=(1, 2, 2), attention_levels=(1, 2))
    config.motion = dict(config.motion, block_channels=(32, 64, 64))
    return config


def micro_config() -> TinyConfig:
    """An even smaller config for tests (seconds per step on one thread)."""
    return TinyConfig(
        vae=dict(ch=8, ch_mult=(1, 2, 2), num_res_blocks=1, norm_groups=4, mid_attention=False),
        unet=dict(
            model_channels=16,
            channel_mult=(1, 2),
            num_res_blocks=1,
            attention_levels=(1,),
            num_heads=2,
            context_dim=32,
            norm_groups=8,
        ),
        motion=dict(block_channels=(16, 32), layers_per_block=1, pe_length=16, num_heads=2, norm_groups=8),
        text=dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=77),
    )


class TinyModel(torch.nn.Module):
    """Every trainable part together: ``vae`` (AutoencoderKL), ``unet``, ``motion``, ``text`` (CLIPTextModel).

    ``tokenizer`` is the word tokenizer over the synthetic grammar. ``animated`` is the UNet with the
    motion module attached (weights shared).
    """

    def __init__(self, config: TinyConfig):
        super().__init__()
        from ..pipelines.models.clip import CLIPTextConfig, CLIPTextModel
        from ..pipelines.models.motion import MotionModule, MotionModuleConfig
        from ..pipelines.models.unet import UNetConfig, UNetModel
        from ..pipelines.models.vae import AutoencoderKL, AutoencoderKLConfig
        from ..pipelines.models.word_tokenizer import WordTokenizer

        self.config = config
        self.tokenizer = WordTokenizer(synthetic.GRAMMAR.vocabulary())
        tok = self.tokenizer
        self.vae = AutoencoderKL(AutoencoderKLConfig(**config.vae))
        self.unet = UNetModel(UNetConfig(**config.unet))
        self.motion = MotionModule(MotionModuleConfig(**config.motion))
        text_cfg = CLIPTextConfig(
            vocab_size=tok.vocab_size,
            bos_token_id=tok.bos_id,
            eos_token_id=tok.eos_id,
            pad_token_id=tok.pad_id,
            **config.text,
        )
        self.text = CLIPTextModel(text_cfg)
        self.animated = self.unet.with_motion(self.motion)

    def denoiser_parameters(self, include_text: bool = True):
        """Parameters trained in the diffusion stages (UNet, motion module and, unless frozen, text encoder)."""
        text = list(self.text.parameters()) if include_text else []
        return list(self.unet.parameters()) + list(self.motion.parameters()) + text

    def token_ids(self, captions) -> torch.Tensor:
        """Captions -> first 77-token chunk ids ``[B, 77]``."""
        return torch.tensor([self.tokenizer.tokenize(c)[0].ids for c in captions], dtype=torch.long)


def set_scaling_factor(model: TinyModel, factor: float) -> None:
    """Replace the VAE config's latent scaling factor (it is stored in the checkpoint metadata)."""
    import dataclasses

    model.vae.config = dataclasses.replace(model.vae.config, scaling_factor=float(factor))


# ----------------------------------------------------------------------------------------- data


def step_rng(seed: int, stage: str, step: int) -> np.random.Generator:
    """The numpy generator for one training step (resumable: depends only on seed, stage and step)."""
    return np.random.default_rng([seed, {"vae": 1, "image": 2, "video": 3, "text": 4}[stage], step])


def step_generator(seed: int, stage: str, step: int) -> torch.Generator:
    """The torch generator for one training step."""
    mixed = int(step_rng(seed, stage, step).integers(2**62))
    return torch.Generator().manual_seed(mixed)


def to_pixels(frames: np.ndarray) -> torch.Tensor:
    """[N,H,W,3] 0..1 numpy -> [N,3,H,W] -1..1 torch."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2) * 2.0 - 1.0


def scene_centre(scene: synthetic.Scene, frame: int):
    """The object's centre (x, y) in pixels at ``frame``."""
    t = frame / max(scene.frames - 1, 1)
    return (scene.start[0] + t * (scene.end[0] - scene.start[0]), scene.start[1] + t * (scene.end[1] - scene.start[1]))


def vae_batch(rng: np.random.Generator, count: int, crop: Optional[int], object_crops: float = 0.7) -> torch.Tensor:
    """``count`` random frames (random clip, random frame, optional square crop) as pixels.

    With probability ``object_crops`` a crop is placed around the object (a uniformly placed crop
    mostly shows background, and the shapes' colours are what matter).
    """
    frames = []
    for _ in range(count):
        scene = synthetic.random_scene(rng)
        video = synthetic.render_scene(scene)
        index = int(rng.integers(len(video)))
        frame = video[index]
        if crop:
            limit = frame.shape[0] - crop
            if rng.random() < object_crops:
                cx, cy = scene_centre(scene, index)
                jitter = rng.uniform(-crop / 4, crop / 4, 2)
                x = int(np.clip(round(cx - crop / 2 + jitter[0]), 0, limit))
                y = int(np.clip(round(cy - crop / 2 + jitter[1]), 0, limit))
            else:
                y, x = rng.integers(0, limit + 1, 2)
            frame = frame[y : y + crop, x : x + crop]
        frames.append(frame)
    return to_pixels(np.stack(frames))


def still_caption(scene: synthetic.Scene) -> str:
    """The caption of one frame of ``scene``: colour, shape and background, no motion ("a red circle on a black
    background"). Image steps use it with ``--still-captions``: a single frame does not show the motion, and training on captions that
    name it anyway teaches the text encoder to drop the motion words from every later token."""
    return f"a {scene.colour} {scene.shape} on a {scene.background} background"


def caption_dropout(captions, rng: np.random.Generator, p_empty: float):
    """Replace each caption by "" with probability ``p_empty`` (classifier-free guidance training)."""
    return ["" if rng.random() < p_empty else c for c in captions]


# ----------------------------------------------------------------------------------- text alignment


class TextVideoAligner(nn.Module):
    """Training-only partner of the text encoder in the ``text`` stage (never shipped).

    A small video encoder (the 16 frames, pooled to 32x32, stacked as channels of a 2D CNN, so the first
    convolution sees the motion) and a projection of the text encoder's pooled padding tokens into one
    shared space, with CLIP's learnable temperature. Why this stage exists: a text encoder trained only
    through the UNet's loss never learns to carry the motion words into the later tokens (the UNet does not
    use them yet, so nothing asks for them, and it cannot use them until they are there); the UNet's
    cross-attention reads mostly those later tokens. CLIP's own text encoder was trained contrastively
    against images for the same reason.
    """

    def __init__(self, text_width: int, frames: int = synthetic.FRAMES, width: int = 64, embed: int = 64):
        super().__init__()
        self.video = nn.Sequential(
            nn.Conv2d(3 * frames, width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, embed),
        )
        self.text_projection = nn.Linear(text_width, embed)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_video(self, videos: torch.Tensor) -> torch.Tensor:
        """videos ``[B, F, H, W, 3]`` in 0..1 -> unit embeddings ``[B, embed]``."""
        x = rearrange(videos, "b f h w c -> b (f c) h w") * 2 - 1
        x = F.adaptive_avg_pool2d(x, 32)
        return F.normalize(self.video(x), dim=-1)

    def encode_text(self, token_states: torch.Tensor, ids: torch.Tensor, eos_id: int) -> torch.Tensor:
        """Mean of the end/padding tokens' states (what cross-attention mostly reads) -> unit embeddings."""
        tail = (ids == eos_id).float()[..., None]
        pooled = (token_states * tail).sum(1) / tail.sum(1)
        return F.normalize(self.text_projection(pooled), dim=-1)


def scene_labels(scenes) -> torch.Tensor:
    """One integer per distinct (colour, shape, motion, background): clips with equal labels are not negatives."""
    keys = [(s.colour, s.shape, s.motion, s.background) for s in scenes]
    index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return torch.tensor([index[k] for k in keys])


def text_alignment_step(model: "TinyModel", aligner: TextVideoAligner, videos: np.ndarray, scenes):
    """Symmetric InfoNCE between captions and their clips (CLIP's loss); other clips of the same caption are
    left out of the negatives. Returns (loss, {"acc": text -> video top-1 accuracy})."""
    ids = model.token_ids([s.caption for s in scenes])
    text = aligner.encode_text(model.text(ids), ids, model.tokenizer.eos_id)
    video = aligner.encode_video(torch.from_numpy(videos))
    logits = aligner.logit_scale.clamp(max=math.log(100)).exp() * text @ video.T
    labels = scene_labels(scenes)
    same = labels[:, None] == labels[None, :]
    logits = logits.masked_fill(same & ~torch.eye(len(scenes), dtype=torch.bool), float("-inf"))
    target = torch.arange(len(scenes))
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    accuracy = (logits.argmax(1) == target).float().mean()
    return loss, {"acc": float(accuracy)}


# ----------------------------------------------------------------------------------------- losses


def vae_step(model: TinyModel, pixels: torch.Tensor, generator: torch.Generator, kl_weight: float = 1e-4):
    """One VAE loss: foreground-weighted L1 + MSE reconstruction of a sampled latent + ``kl_weight`` * mean KL.

    Returns (loss, parts)."""
    mean, logvar = model.vae.encode_moments(pixels)
    eps = torch.randn(mean.shape, generator=generator)
    z = mean + torch.exp(0.5 * logvar) * eps
    recon = model.vae.decode(z)
    # Coloured (foreground) pixels weigh 5x: they are few, and their colour is what captions name.
    saturation = pixels.amax(dim=1, keepdim=True) - pixels.amin(dim=1, keepdim=True)
    weight = 1.0 + 2.0 * saturation
    l1 = ((recon - pixels).abs() * weight).mean()
    mse = ((recon - pixels).square() * weight).mean()
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
    loss = l1 + mse + kl_weight * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


def alphas_cumprod(schedule: ScheduleConfig) -> torch.Tensor:
    """The schedule's cumulative alphas [T] (from the sampling package, so training and sampling agree)."""
    from ..pipelines.sampling.schedules import alphas_cumprod_from_config

    return alphas_cumprod_from_config(schedule)


@torch.no_grad()
def encode_latents(model: TinyModel, videos: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """Videos [B,F,H,W,3] -> scaled latents [B*F,C,h,w] (a posterior sample)."""
    pixels = to_pixels(videos.reshape(-1, *videos.shape[2:]))
    mean, logvar = model.vae.encode_moments(pixels)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
    return z * model.vae.config.scaling_factor


def diffusion_step(
    model: TinyModel,
    latents: torch.Tensor,
    captions,
    num_frames: int,
    abar: torch.Tensor,
    generator: torch.Generator,
    *,
    use_motion: bool,
    offset_noise: float = 0.1,
    min_snr: float = 5.0,
    high_noise_fraction: float = 0.0,
    high_noise_from: int = 850,
    timesteps: Optional[torch.Tensor] = None,
    noise: Optional[torch.Tensor] = None,
    pixel_weight: Optional[torch.Tensor] = None,
):
    """One denoising loss on latents [B*F,C,h,w] with one caption and one timestep per clip.

    The target follows the model's schedule: epsilon, or v = sqrt(abar) * eps - sqrt(1 - abar) * x0 for
    ``v_prediction`` (needed with a zero-terminal-SNR schedule, where epsilon says nothing about x0 at
    t = T). Min-SNR weighting per clip: min(SNR, min_snr) / SNR for epsilon, min(SNR + 1, min_snr) /
    (SNR + 1) for v (which keeps full weight at SNR 0, the steps that must take the layout and motion
    from the caption). A ``high_noise_fraction`` of the clips draw their timestep from
    ``[high_noise_from, T)`` instead of ``[0, T)``. ``timesteps`` ``[clips]`` and ``noise`` (shaped like
    ``latents``) replace the random draws; ``pixel_weight`` ``[B*F,1,h,w]`` weights the squared error per
    latent pixel (see :func:`shape_pair_step`). Returns (loss, parts).
    """
    clips = latents.shape[0] // num_frames
    T = abar.shape[0]
    t = (
        timesteps
        if timesteps is not None
        else sample_timesteps(clips, T, generator, high_noise_fraction, high_noise_from)
    )
    if noise is None:
        noise = torch.randn(latents.shape, generator=generator)
    if offset_noise:
        per_clip = torch.randn(clips, latents.shape[1], 1, 1, generator=generator) * offset_noise
        noise = noise + per_clip.repeat_interleave(num_frames, 0)
    a = abar[t].repeat_interleave(num_frames)[:, None, None, None]
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    context = caption_context(model, captions, num_frames)
    timesteps = t.repeat_interleave(num_frames)
    net = model.animated if use_motion else model.unet
    pred = net(noisy, timesteps, context, num_frames=num_frames)
    snr = abar[t] / (1 - abar[t])
    if model.config.schedule.prediction_type == "v_prediction":
        target = a.sqrt() * noise - (1 - a).sqrt() * latents
        weight = torch.clamp(snr + 1, max=min_snr) / (snr + 1)
    else:
        target = noise
        weight = torch.clamp(snr, max=min_snr) / snr
    error = (pred - target).square()
    per_frame = error.mean(dim=(1, 2, 3))
    if pixel_weight is not None:
        error = error * pixel_weight
    loss = (error.mean(dim=(1, 2, 3)) * weight.repeat_interleave(num_frames)).mean()
    return loss, {"mse": per_frame.detach().mean().item()}


def shape_difference_weight(videos: np.ndarray, downscale: int, object_weight: float) -> torch.Tensor:
    """Per-latent-pixel loss weights ``[S*F, 1, h, w]`` for renders of one layout in S shapes ``[S, F, H, W, 3]``:
    ``1 + object_weight`` wherever the renders differ (dilated to the latent grid by a max-pool), 1 elsewhere."""
    pixels = torch.from_numpy(np.ascontiguousarray(videos))
    differs = (pixels.amax(dim=0) - pixels.amin(dim=0)).amax(dim=-1) > 0.02  # [F, H, W]
    grid = F.max_pool2d(differs[:, None].float(), downscale)
    weight = 1.0 + object_weight * grid
    return weight.repeat(videos.shape[0], 1, 1, 1)


def one_frame(scene: synthetic.Scene, frame: int) -> synthetic.Scene:
    """The one-frame scene showing frame ``frame`` of ``scene`` (renders 16 times faster than the clip)."""
    t = frame / max(scene.frames - 1, 1)
    centre = scene_centre(scene, frame)
    size = scene.start_size + t * (scene.end_size - scene.start_size)
    return synthetic.with_attributes(scene, start=centre, end=centre, start_size=size, end_size=size, frames=1)


def shape_pair_step(
    model: "TinyModel",
    rng: np.random.Generator,
    generator: torch.Generator,
    abar: torch.Tensor,
    *,
    layouts: int = 2,
    t_from: int = 200,
    object_weight: float = 4.0,
    single_frames: bool = False,
):
    """A denoising step on ``layouts`` random scenes, each rendered as every shape of the grammar with the same
    positions, sizes, colour, motion and background, the same noise and the same timestep (t in
    ``[t_from, T)``), each with its own caption; the squared error counts ``1 + object_weight`` times where
    the shapes' renders differ.

    Why: a circle and a square of the same half-width differ only in four corners (about 5% of a 16x16x4
    latent at the usual sizes), so in ordinary steps the shape word barely changes the loss, and the shipped
    model learned to ignore it (its loss on circle clips was the same with "circle" or "square" in the
    caption; sampling then ended on squares). Paired renders with shared noise leave the caption as the only
    way to tell the clips apart, and the weights put the gradient where they differ.

    ``single_frames``: one random frame of each layout through the image UNet (no motion module) instead of the
    clip: the shapes are drawn by the spatial layers, and a frame costs a sixteenth of a clip, so a step can
    afford many more layouts.
    """
    groups = []
    for _ in range(layouts):
        scene = synthetic.random_scene(rng)
        template = int(rng.integers(len(synthetic.GRAMMAR.templates)))
        if single_frames:
            scene = one_frame(scene, int(rng.integers(scene.frames)))
        groups.append([synthetic.with_attributes(scene, shape=shape, template=template) for shape in synthetic.SHAPES])
    shapes = len(synthetic.SHAPES)
    videos = [np.stack([synthetic.render_scene(s) for s in group]) for group in groups]
    frames = videos[0].shape[1]
    with torch.no_grad():
        latents = encode_latents(model, np.concatenate(videos), generator)
    downscale = videos[0].shape[2] // latents.shape[-1]
    weight = torch.cat([shape_difference_weight(v, downscale, object_weight) for v in videos])
    per_group = torch.randn((layouts, 1, frames) + tuple(latents.shape[1:]), generator=generator)
    noise = per_group.expand(-1, shapes, -1, -1, -1, -1).reshape(latents.shape)
    T = abar.shape[0]
    t = torch.randint(t_from, T, (layouts,), generator=generator).repeat_interleave(shapes)
    captions = [s.caption for group in groups for s in group]
    return diffusion_step(
        model,
        latents,
        captions,
        frames,
        abar,
        generator,
        use_motion=not single_frames,
        offset_noise=0.0,
        timesteps=t,
        noise=noise,
        pixel_weight=weight,
    )


def caption_context(model: "TinyModel", captions, num_frames: int) -> torch.Tensor:
    """Text-encoder states of each caption, repeated for its ``num_frames`` frames ``[B * F, 77, width]``."""
    return model.text(model.token_ids(captions)).repeat_interleave(num_frames, 0)


def terminal_mean_step(
    model: "TinyModel", latents: torch.Tensor, captions, num_frames: int, generator: torch.Generator
):
    """The loss at t = T of a zero-terminal-SNR v-prediction model, against the mean of several clips per caption.

    ``latents`` ``[clips * K * num_frames, ...]``: K clips of each caption in a row (different layouts),
    ``captions`` one per group. At zero SNR the input is pure noise and the target v = -x0, so the best
    prediction is -E[x0 | caption]; the mean of K clips is an unbiased estimate of it with K times less
    variance than one clip (the same minimiser as :func:`diffusion_step` at t = T, with less noise). This is
    where a caption's motion must turn into a layout that changes over the frames, and with one clip per
    caption that signal is lost in the clip-to-clip variance.
    """
    groups = len(captions)
    video = latents.reshape(groups, -1, num_frames, *latents.shape[1:])
    return terminal_loss(
        model, video.mean(dim=1).reshape(groups * num_frames, *latents.shape[1:]), captions, num_frames, generator
    )


def terminal_loss(
    model: "TinyModel", mean_latents: torch.Tensor, captions, num_frames: int, generator: torch.Generator
):
    """The t = T loss of a zero-terminal-SNR v-prediction model: pure noise in, -E[x0 | caption] out.

    ``mean_latents`` ``[len(captions) * num_frames, C, h, w]`` are the (estimated) mean clips of the captions.
    """
    schedule = model.config.schedule
    if not (schedule.zero_terminal_snr and schedule.prediction_type == "v_prediction"):
        raise ValueError("the t = T loss needs a v-prediction schedule with zero terminal SNR")
    groups = len(captions)
    target = -mean_latents
    noise = torch.randn(target.shape, generator=generator)
    context = caption_context(model, captions, num_frames)
    T = int(schedule.num_train_timesteps)
    pred = model.animated(noise, torch.full((groups * num_frames,), T - 1), context, num_frames=num_frames)
    loss = (pred - target).square().mean()
    return loss, {"terminal_mse": float(loss.detach())}


@torch.no_grad()
def terminal_mean_table(model: "TinyModel", clips_per_caption: int, seed: int, combinations=None, chunk: int = 16):
    """The mean scaled latent clip of every (colour, shape, motion, background) of the grammar (or of the
    given ``combinations``), each over ``clips_per_caption`` random layouts: ``(combinations, [N, F, C, h, w])``.

    A terminal step's target depends only on the caption, so it can be estimated once, from many more clips
    than a step could afford to render and encode (the posterior mean is used: the sample's noise would only
    add variance).
    """
    combos = list(combinations or synthetic.GRAMMAR.combinations())
    rng = np.random.default_rng(seed)
    scenes = [synthetic.layout_scene(*combo, rng) for combo in combos for _ in range(clips_per_caption)]
    means = []
    for start in range(0, len(scenes), chunk):
        videos = np.stack([synthetic.render_scene(s) for s in scenes[start : start + chunk]])
        moments, _ = model.vae.encode_moments(to_pixels(videos.reshape(-1, *videos.shape[2:])))
        means.append(moments * model.vae.config.scaling_factor)
    latents = torch.cat(means).reshape(len(combos), clips_per_caption, synthetic.FRAMES, *means[0].shape[1:])
    return combos, latents.mean(dim=1)


def terminal_table_step(
    model: "TinyModel",
    combos,
    table: torch.Tensor,
    batch: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    cfg_dropout: float = 0.1,
    weights=None,
):
    """A t = T step on ``batch`` random captions whose targets come from :func:`terminal_mean_table`
    (drawn uniformly, or in proportion to ``weights``, one per combination)."""
    if weights is None:
        picks = rng.integers(len(combos), size=batch)
    else:
        weights = np.asarray(weights, np.float64)
        picks = rng.choice(len(combos), size=batch, p=weights / weights.sum())
    captions = [
        synthetic.GRAMMAR.caption(*combos[i], template=int(rng.integers(len(synthetic.GRAMMAR.templates))))
        for i in picks
    ]
    captions = caption_dropout(captions, rng, cfg_dropout)
    frames = table.shape[1]
    return terminal_loss(
        model, table[torch.as_tensor(picks)].reshape(batch * frames, *table.shape[2:]), captions, frames, generator
    )


def sample_timesteps(
    count: int, T: int, generator: torch.Generator, high_noise_fraction: float = 0.0, high_noise_from: int = 850
) -> torch.Tensor:
    """``count`` training timesteps: uniform over ``[0, T)``, a ``high_noise_fraction`` of them over
    ``[high_noise_from, T)``.

    Why: with SD's schedule even t = 999 keeps ~7% of the signal, and 16 frames of a large object let
    the network read the clip's layout and motion from the noisy input at almost every t. Only the top
    timesteps need the caption for the motion, and uniform sampling rarely visits them. (On its own this
    did not make the default model follow the motion words; see default_model/README.md.)
    """
    uniform = torch.randint(0, T, (count,), generator=generator)
    if high_noise_fraction <= 0:
        return uniform
    high = torch.randint(high_noise_from, T, (count,), generator=generator)
    pick = torch.rand(count, generator=generator) < high_noise_fraction
    return torch.where(pick, high, uniform)


# ----------------------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of a set of parameters (warm-up: decay ramps from 0 to ``decay``)."""

    def __init__(self, params, decay: float = 0.995):
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self):
        """Move the average toward the current parameters."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for s, p in zip(self.shadow, self.params):
            s.mul_(d).add_(p.detach(), alpha=1 - d)

    def state_dict(self):
        """Tensors and counters (torch.load(weights_only=True)-safe)."""
        return {"shadow": self.shadow, "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict`."""
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)
        self.updates = int(state["updates"])

    @torch.no_grad()
    def copy_to(self, params):
        """Write the averaged values into ``params`` (same order as at construction)."""
        for s, p in zip(self.shadow, params):
            p.copy_(s)


# ----------------------------------------------------------------------------------------- export


def load_exported_model(model: TinyModel, folder) -> None:
    """Load shipped files (``checkpoints/framefold-tiny.safetensors`` and
    ``animatediff_models/framefold-tiny-motion.safetensors`` under ``folder``) into ``model``: UNet, VAE (with its
    scaling factor), text encoder and motion module. The configs must match ``model.config``; the schedule
    must match too (a fine-tune continues the shipped model's objective)."""
    from pathlib import Path

    from ..pipelines.loading.checkpoint import load_checkpoint
    from ..pipelines.loading.motion import load_motion_module

    folder = Path(folder)
    diffusion, text_encoder, vae = load_checkpoint(folder / "checkpoints" / "framefold-tiny.safetensors")
    motion = load_motion_module(folder / "animatediff_models" / "framefold-tiny-motion.safetensors")
    shipped, wanted = diffusion.schedule, model.config.schedule
    if (shipped.prediction_type, shipped.zero_terminal_snr) != (wanted.prediction_type, wanted.zero_terminal_snr):
        raise ValueError(
            f"{folder}: the shipped model uses {shipped.prediction_type} (zero terminal SNR "
            f"{shipped.zero_terminal_snr}); start the fine-tune with the same --prediction / --zero-terminal-snr"
        )
    model.unet.load_state_dict(diffusion.unet.state_dict())
    model.vae.load_state_dict(vae.model.state_dict())
    model.text.load_state_dict(text_encoder.model.state_dict())
    model.motion.load_state_dict(motion.state_dict())
    set_scaling_factor(model, vae.model.config.scaling_factor)


def export_model(model: TinyModel, checkpoint_path, motion_path, ema: Optional[EMA] = None):
    """Write the FrameFold checkpoint and the motion module file (EMA weights if ``ema`` is given)."""
    from ..pipelines.loading.checkpoint import save_framefold_checkpoint
    from ..pipelines.loading.motion import save_motion_module
    from ..pipelines.models.clip import TextEncoder

    if ema is not None:
        model = copy.deepcopy(model)
        ema.copy_to(model.denoiser_parameters())
    text_encoder = TextEncoder(model.tokenizer, model.text)
    save_framefold_checkpoint(
        checkpoint_path,
        model.unet,
        model.vae,
        text_encoder,
        schedule=model.config.schedule,
        extra={"frame_window": model.motion.config.pe_length},
    )
    save_motion_module(motion_path, model.motion)


def warmup_lr(step: int, base: float, warmup: int = 50) -> float:
    """Linear warm-up to ``base`` over ``warmup`` steps."""
    return base * min(1.0, (step + 1) / warmup)


def cosine_tail(step: int, total: int, base: float, floor: float = 0.1) -> float:
    """Warm-up, then cosine decay to ``floor * base`` at ``total`` steps."""
    lr = warmup_lr(step, base)
    if total <= 0:
        return lr
    progress = min(1.0, step / total)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
