"""Noise priors for video diffusion (see :mod:`.priors`)."""

from .priors import (  # noqa: F401
    METHODS,
    NoisePrior,
    frame_noise_reversal,
    freenoise_noise,
    iid_noise,
    motion_translated_noise,
    past_dependent_noise,
    pyoco_mixed_noise,
    pyoco_progressive_noise,
    videofusion_noise,
)
