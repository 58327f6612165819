"""The part the FNO-based probabilistic models share: checked FNO sizes, seeded construction, the input check."""

from typing import Any

import torch
from neuralop.models import FNO

from _physics_constrained.validation import check_int, check_tensor
from ._seeding import seeded
from ._state import HoldsNeuralopModels

__all__ = ["FNOModel"]


class FNOModel(HoldsNeuralopModels):
    """Base of the probabilistic FNOs over one spatial dimension (:class:`FNOEnsemble`, :class:`HeteroscedasticFNO`).

    Checks the FNO sizes and the seed once, and builds seeded FNOs of that size with :meth:`_seeded_fno`.

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels and predicted fields (time slices), each at least 1.
    n_modes, hidden_channels, n_layers : int
        FNO size (each at least 1).
    seed : int
        Non-negative seed of the initial weights.
    fno_kwargs : dict
        Further arguments of :class:`neuralop.models.FNO` (``positional_embedding`` defaults to ``None``: the
        models are given the grid as an input channel).

    Raises
    ------
    TypeError
        If a size or ``seed`` is not an integer.
    ValueError
        If a size is smaller than 1 or ``seed`` is negative.
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: int, hidden_channels: int, n_layers: int,
                 seed: int, fno_kwargs: dict) -> None:
        super().__init__()
        self._fno_args = dict(
            in_channels=check_int(in_channels, "in_channels", minimum=1),
            n_modes=(check_int(n_modes, "n_modes", minimum=1),),
            hidden_channels=check_int(hidden_channels, "hidden_channels", minimum=1),
            n_layers=check_int(n_layers, "n_layers", minimum=1),
            **{"positional_embedding": None, **fno_kwargs},
        )
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)

    def _seeded_fno(self, out_channels: int, seed: int) -> FNO:
        """An FNO of the checked size with ``out_channels`` outputs (a multiple of the fields' number C for a
        model with several outputs per field), its weights drawn from ``seed``."""
        with seeded(seed):
            return FNO(out_channels=out_channels, **self._fno_args)

    def _check_x(self, x: Any) -> torch.Tensor:
        """The models' input: a floating tensor of shape ``(batch, in_channels, n)``, no dimension empty."""
        c = self._fno_args["in_channels"]
        layout = f"(batch >= 1, in_channels = {c}, n >= 1)"
        check_tensor(x, "x", ndim=3, layout=layout, floating=True)
        if x.shape[0] < 1 or x.shape[1] != c or x.shape[2] < 1:
            raise ValueError(f"x must be a tensor of shape {layout}, got shape {tuple(x.shape)}")
        return x
