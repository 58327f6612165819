"""The warning for a BOON setting that this package's own training campaigns measured to cost accuracy.

The conditions stay exact under every setting; what a setting can cost is accuracy. Where the campaigns found a
setting worse than the plain FNO on most runs of a kind of problem a user can recognise from the model's arguments,
the model warns when it is given that setting, from every path that sets it (construction, the setters, the
loaders, which construct), with the measurement and the alternative. Output enforcement, the default, is never
warned about.
"""

from __future__ import annotations

import warnings

from .conditions import Dirichlet, Neumann
from .untrained import BoundaryAccuracyWarning

__all__ = ["warn_measured_risk"]


def warn_measured_risk(spec, kernel_correction: bool, hidden_values: bool, stacklevel: int = 3) -> None:
    """Warn (:class:`~boon_ext.BoundaryAccuracyWarning`) for T2 on a space-time model's Dirichlet or Neumann walls.

    Measured in the hard-regime campaign (``python -m experiments.reproduce_boon --campaign hard``,
    ``docs/boon_results.md``): on space-time problems trained and tested inside the training range (thin-layer and
    ordinary Stokes and both forms of the lid-driven cavity, Dirichlet; the wave equation, Neumann), the kernel
    correction without the values in every layer was worse than the plain FNO on every Dirichlet run and on most
    runs of the wave (one 5x worse; one gained), its training loss above the FNO's on every run it lost. With the
    values written into every layer as well (``hidden_values=True``) it was better on one space-time problem and
    worse on another (figures: the docs page, not this text). On 1-D problems it was level or better on most: they
    are not warned about, nor are periodic faces alone (T2 does not act on them).

    Parameters
    ----------
    spec : BoundarySpec
        The model's conditions (with its time axis).
    kernel_correction, hidden_values : bool
        The model's per-layer settings (``hidden_values`` chooses the message).
    stacklevel : int
        Passed to :func:`warnings.warn`, so that the warning points at the caller's line.
    """
    if not (kernel_correction and spec and spec.time_axis is not None):
        return
    if not any(isinstance(c, (Dirichlet, Neumann)) for c in spec.conditions):
        return
    if hidden_values:
        measured = ("with the values in every layer as well (hidden_values=True) it was better than the plain FNO on "
                    "one space-time problem and worse on another")
    else:
        measured = ("without the values in every layer it trained worse than the plain FNO on space-time problems "
                    "(every Dirichlet run inside the training range; most runs of the wave equation, Neumann)")
    warnings.warn(
        "kernel_correction=True on a space-time model with Dirichlet or Neumann faces: in this package's campaign "
        f"(docs/boon_results.md, 'Where BOON pays') the kernel correction {measured}. The default, "
        "kernel_correction=False, keeps the walls exact; compare on your own validation data before relying on the "
        "correction (silence with warnings.filterwarnings('ignore', category=boon_ext.BoundaryAccuracyWarning))",
        BoundaryAccuracyWarning, stacklevel=stacklevel)
