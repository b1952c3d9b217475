"""Video decode/encode with PyAV and frame utilities."""
