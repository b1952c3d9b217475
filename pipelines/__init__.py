"""The FrameFold library: models, loaders, samplers, noise priors, video I/O. Usable with no host."""
