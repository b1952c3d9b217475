"""Architectures: temporal UNet + motion modules, VAE (+ temporal decoder), CLIP text encoder, and more."""
