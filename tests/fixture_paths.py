"""Where the shared checkpoint manifests are: ``../shared/fixtures/manifests`` beside the checkout.

CI clones the repository with ``shared/`` beside it, as developers have it; a local clone made elsewhere
(``git clone /work/main /tmp/x``) finds it beside the checkout it was cloned from. A missing folder is an
error (the manifest tests must run), never a skip.
"""

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _origin_checkout():
    """The checkout this repository was cloned from, when its origin is a local folder (else None)."""
    url = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"], capture_output=True, text=True
    ).stdout.strip()
    return Path(url).resolve() if url and Path(url).is_dir() else None


def manifests_dir():
    """The manifests folder: $FRAMEFOLD_MANIFESTS, else shared/fixtures/manifests next to the repo, else next to
    the local checkout it was cloned from."""
    origin = _origin_checkout()
    candidates = [
        os.environ.get("FRAMEFOLD_MANIFESTS"),
        REPO_ROOT.parent / "shared" / "fixtures" / "manifests",
        origin.parent / "shared" / "fixtures" / "manifests" if origin else None,
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise FileNotFoundError(f"checkpoint manifests not found; looked in {[str(c) for c in candidates if c]}")


MANIFESTS = manifests_dir()
