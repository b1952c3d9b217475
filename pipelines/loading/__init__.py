"""Readers for real checkpoint files: format detection, key maps, dtype handling."""
