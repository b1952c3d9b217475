"""Where the shared checkpoint manifests are: ``../shared/fixtures/manifests`` beside the checkout.

CI clones the repository with ``shared/`` beside it, as developers have it. A missing folder is an
error (the manifest tests must run), never a skip.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def manifests_dir():
    """The manifests folder: $FRAMEFOLD_MANIFESTS, else ../shared/fixtures/manifests next to the repo."""
    candidates = [os.environ.get("FRAMEFOLD_MANIFESTS"), REPO_ROOT.parent / "shared" / "fixtures" / "manifests"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise FileNotFoundError(f"checkpoint manifests not found; looked in {[str(c) for c in candidates if c]}")


MANIFESTS = manifests_dir()
