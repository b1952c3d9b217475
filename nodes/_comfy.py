"""Progress and interrupt inside real ComfyUI.

Library loops report through ``pipelines.progress``. FrameFold's own host installs a sink around
every node call; inside ComfyUI nobody does, so this module maps the same reports to ComfyUI's
``comfy.utils.ProgressBar`` (which drives the canvas bar and checks for interrupts) and to
``comfy.model_management.throw_exception_if_processing_interrupted`` (so a stop request raises
ComfyUI's own interrupt exception, reported as "interrupted", not as an error). A sampler's preview latent (the
denoised estimate, in the UNet's latent space like core's ``x0``) goes through core's ``latent_preview`` previewer
for the SD 1.5 latent format, so ``--preview-method`` (none / latent2rgb / taesd) is honoured as for KSampler.

Outside ComfyUI every helper here is a no-op, so nodes can use them unconditionally.
"""

import contextlib
import functools
import logging
from typing import Any, Callable, Iterator, Optional, Tuple

from ..pipelines import progress

log = logging.getLogger("framefold")
PREVIEW_CHANNELS = 4  # the SD 1.5 latent format core's previewers are built for


def comfy_modules() -> Optional[Tuple[Any, Any]]:
    """``(comfy.utils, comfy.model_management)`` when running inside ComfyUI, else None."""
    try:
        import comfy.model_management as model_management  # type: ignore
        import comfy.utils as utils  # type: ignore
    except ImportError:
        return None
    return utils, model_management


class ComfyProgressSink(progress.ProgressSink):
    """Forwards progress to a ComfyUI ProgressBar; interrupts raise ComfyUI's own exception."""

    def __init__(self, utils: Any, model_management: Any):
        super().__init__()
        self._utils = utils
        self._mm = model_management
        self._bar: Any = None
        self._total: Optional[int] = None
        self._previewer: Any = None
        self._previews = True  # off once core says previews are disabled (or cannot make one)

    def progress(self, step: int, total: int, preview: Any = None) -> None:
        """Update (or start) the ComfyUI progress bar for this node, with a preview image when one is given."""
        if self._bar is None or total != self._total:
            self._bar = self._utils.ProgressBar(total)
            self._total = total
        self._bar.update_absolute(step, total, self._preview_image(preview))

    def _preview_image(self, latent: Any) -> Any:
        """Core's ``("JPEG", PIL image, size)`` preview of the first frame of ``latent [F,C,h,w]``, or None."""
        if latent is None or not self._previews or latent.ndim != 4 or latent.shape[1] != PREVIEW_CHANNELS:
            return None
        try:
            if self._previewer is None:
                self._previewer = core_previewer(latent.device)
                if self._previewer is None:
                    self._previews = False
                    return None
            return self._previewer.decode_latent_to_preview_image("JPEG", latent[:1].float())
        except Exception as e:  # a preview must never fail the run
            log.warning("FrameFold: latent preview skipped: %s", e)
            self._previews = False
            return None

    def should_stop(self) -> bool:
        """Raise ComfyUI's interrupt exception when the user pressed stop; otherwise keep going."""
        self._mm.throw_exception_if_processing_interrupted()
        return False


def core_previewer(device: Any) -> Any:
    """Core's previewer (``latent_preview.get_previewer``) for SD 1.5 latents, or None when ``--preview-method``
    is ``none`` or ComfyUI is not there."""
    try:
        import comfy.latent_formats as latent_formats  # type: ignore
        import latent_preview  # type: ignore
    except ImportError:
        return None
    return latent_preview.get_previewer(device, latent_formats.SD15())


@contextlib.contextmanager
def host_progress() -> Iterator[Optional[progress.ProgressSink]]:
    """Inside ComfyUI, route ``pipelines.progress`` to ComfyUI for the ``with`` block; elsewhere do nothing."""
    modules = comfy_modules()
    if modules is None:
        yield None
        return
    with progress.use_sink(ComfyProgressSink(*modules)) as sink:
        yield sink


def with_host_progress(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a node's FUNCTION method: runs it under :func:`host_progress`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with host_progress():
            return method(*args, **kwargs)

    wrapper.__framefold_host_progress__ = True  # type: ignore[attr-defined]
    return wrapper


def wrap_node_class(cls: type) -> type:
    """Make a node class's FUNCTION run under :func:`host_progress` (only inside ComfyUI; idempotent)."""
    if comfy_modules() is None:
        return cls
    name = getattr(cls, "FUNCTION", None)
    method = getattr(cls, name, None) if name else None
    if method is None or getattr(method, "__framefold_host_progress__", False):
        return cls
    setattr(cls, str(name), with_host_progress(method))
    return cls
