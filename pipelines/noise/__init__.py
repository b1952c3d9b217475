"""Noise priors for video diffusion."""
