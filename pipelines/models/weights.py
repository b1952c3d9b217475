"""Where a model wrapper's weights live: one ``device`` / ``dtype`` for every wrapper (VAE, ControlNet, upscaler)."""

import torch
from torch import nn


class HoldsWeights:
    """Mixin: ``device`` and ``dtype`` of the module :meth:`weights_module` returns (``self.model`` by default).

    A module without parameters reports the CPU and float32.
    """

    def weights_module(self) -> nn.Module:
        """The module holding the weights."""
        return self.model  # type: ignore[attr-defined, no-any-return]

    def _first_parameter(self) -> "torch.nn.Parameter | None":
        return next(iter(self.weights_module().parameters()), None)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        param = self._first_parameter()
        return param.device if param is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights."""
        param = self._first_parameter()
        return param.dtype if param is not None else torch.float32
