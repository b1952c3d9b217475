"""Image-to-video by first-frame latent replacement (seed 000 §4.1, ConsistI2V-style, training-free).

The first latent frame is held to the encoded image during sampling. At the start and after every step, with
the current noise level ``sigma`` (sigma space, ``x = x0 + sigma * eps``)::

    x[0] = strength * (image_latent + sigma * noise0) + (1 - strength) * x[0]

``noise0`` is frame 0's own initial noise, so the held frame stays consistent with the start point. Strength 1
replaces frame 0 outright (it ends exactly on the image latent at a final sigma of 0); strength 0 is plain
text-to-video; values between pull frame 0 towards the image without pinning it. The motion module carries the
image's content to the other frames through temporal attention.
"""

from .samplers import SAMPLERS
from .schedules import from_sigma_space, initial_latent, noised_latent


def _check_strength(strength):
    """Strength must lie in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"image strength must be in [0, 1], got {strength}")


def _frame_latent(image_latent):
    """``[C, h, w]`` from ``[1, C, h, w]`` or ``[C, h, w]``."""
    if image_latent.dim() == 4:
        if image_latent.shape[0] != 1:
            raise ValueError(f"expected one image latent [1, C, h, w], got {tuple(image_latent.shape)}")
        image_latent = image_latent[0]
    if image_latent.dim() != 3:
        raise ValueError(f"expected an image latent [C, h, w], got {tuple(image_latent.shape)}")
    return image_latent


def hold_first_frame(x, image_latent, noise0, sigma, strength):
    """``x`` (sigma space ``[F, C, h, w]``) with frame 0 blended towards the image latent noised to ``sigma``."""
    held = noised_latent(_frame_latent(image_latent).to(x), noise0.to(x), float(sigma))
    x = x.clone()
    x[0] = held * strength + x[0] * (1.0 - strength)
    return x


def first_frame_hook(image_latent, noise0, strength):
    """A sampler step hook applying :func:`hold_first_frame` after every step."""
    _check_strength(strength)

    def hold(i, sigma, x):
        return hold_first_frame(x, image_latent, noise0, sigma, strength)

    return hold


def first_frame_start(image_latent, noise0, sigma0, strength):
    """A start-point transform ``x -> x`` holding frame 0 at the first sigma (pairs with :func:`first_frame_hook`)."""
    _check_strength(strength)
    return lambda x: hold_first_frame(x, image_latent, noise0, sigma0, strength)


def image_to_video(
    denoise,
    image_latent,
    noise,
    sigmas,
    *,
    strength=1.0,
    sampler="ddim",
    generator=None,
    step_hook=None,
    **sampler_options,
):
    """Sample a video whose first frame is held to ``image_latent`` (``[1, C, h, w]``, scaled like the VAE's).

    noise: unit initial noise ``[F, C, h, w]`` (frame 0's row is the held frame's noise). ``step_hook`` runs after
    the hold. Returns the VP latent ``[F, C, h, w]``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {sorted(SAMPLERS)}")
    if tuple(_frame_latent(image_latent).shape) != tuple(noise.shape[1:]):
        raise ValueError(
            f"image latent {tuple(image_latent.shape)} does not match the video's frame shape {tuple(noise.shape[1:])}"
        )
    x = first_frame_start(image_latent, noise[0], float(sigmas[0]), strength)(initial_latent(noise, sigmas))
    hold = first_frame_hook(image_latent, noise[0], strength)
    if step_hook is None:
        hook = hold
    else:

        def hook(i, sigma, x):
            x = hold(i, sigma, x)
            replaced = step_hook(i, sigma, x)
            return x if replaced is None else replaced

    x = SAMPLERS[sampler](denoise, x, sigmas, generator=generator, step_hook=hook, **sampler_options)
    return from_sigma_space(x, float(sigmas[-1]))
