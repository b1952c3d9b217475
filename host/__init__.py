"""Standalone runtime: node registry, workflow formats, executor, server, CLI."""
