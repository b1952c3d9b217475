"""Noise schedules, samplers, guidance, context windows and iterative long-video generation."""
