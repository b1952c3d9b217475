"""Training tooling for the embedded default model (used by ``scripts/train_default_model.py``).

Kept apart from ``pipelines``: nodes and the host never import it, so the shipped library does not
depend on it.
"""
