"""The warning for a BOON model whose per-layer settings its weights were not trained with.

Every path that puts weights into a BOON model (``from_fno``, ``from_checkpoint``, ``load_ddp_checkpoint``,
``load_state_dict``, ``load_checkpoint``) calls :func:`warn_untrained_settings`, so the check and the message are
the same on each. It lives in a module of its own, which imports nothing of the package's models, so that the models,
the checkpoint readers and the fine-tuning helper can all use it without importing one another in a circle.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Tuple

from _physics_constrained.validation import check_bool

__all__ = ["BoundaryAccuracyWarning", "warn_untrained_settings"]


class BoundaryAccuracyWarning(UserWarning):
    """A boundary-condition setting that keeps the conditions exact but costs accuracy as it stands."""


def warn_untrained_settings(model, metadata, source: str, stacklevel: int = 3) -> None:
    """Warn when ``model`` uses per-layer settings (kernel correction, hidden values) its new weights lack.

    Every path that puts weights into a BOON model calls this one function, so that the check and the message
    are the same on each (``from_fno``, ``from_checkpoint``, ``load_ddp_checkpoint``, ``load_state_dict``,
    ``load_checkpoint``).

    Parameters
    ----------
    model : BOONFNO or BOONTFNO
        The model the weights are given to.
    metadata : mapping or None
        What the weights were trained with: ``boundary``, ``kernel_correction`` and ``hidden_values`` as
        neuralop's record of a model's constructor arguments holds them (``_init_kwargs``, the state dict's
        ``_metadata`` entry), or a source model's live settings. Anything but a mapping means no record:
        nothing can be said, and nothing is warned.
    source : str
        Where the weights come from, for the message (e.g. ``"the checkpoint m_state_dict.pt"``).
    stacklevel : int, default 3
        As in ``warnings.warn``: 3 points at the caller of the function that calls this one.

    Warns
    -----
    BoundaryAccuracyWarning
        ``kernel_correction`` and/or ``hidden_values`` are on in ``model`` but the weights were trained without.
    """
    settings = _untrained_settings(model, metadata)
    if not settings:
        return
    them = "them" if len(settings) > 1 else "it"
    if "kernel_correction=True" in settings:
        cost = ("the interior error typically grows several times (the kernel correction: measured 2.5x to 47x, "
                "medians over 3 seeds; docs/boon_design.md)")
        remedy = ("or fine-tune the wrapped model with boon_ext.finetune_kernel_correction(model, train_loader) for "
                  "a few epochs")
    else:  # hidden values alone: not measured on trained weights, and the helper would switch T2 on as well
        cost = ("what that costs a trained model is not measured (switching the kernel correction on the same way "
                "made trained models 2.5x to 47x less accurate)")
        remedy = ("or train the model further with it on (boon_ext.finetune_kernel_correction(model, train_loader) "
                  "does, but also switches the kernel correction on)")
    warnings.warn(
        f"{' and '.join(settings)} on {source}, whose weights were trained without {them}: the conditions hold "
        f"exactly, but {them} {'change' if len(settings) > 1 else 'changes'} every Fourier layer's face inputs, "
        f"which these weights have never seen, and {cost}. Wrap with the defaults kernel_correction=False and "
        f"hidden_values=False (output enforcement, which keeps the model's accuracy), {remedy}.",
        BoundaryAccuracyWarning,
        stacklevel=stacklevel,
    )


def _untrained_settings(model, metadata) -> Tuple[str, ...]:
    """The per-layer settings ``model`` uses that weights saved with ``metadata`` were not trained with.

    Weights count as trained with a setting only if a BOON model with boundary conditions saved them with it on.
    Returns ``"kernel_correction=True"`` and/or ``"hidden_values=True"``; empty when nothing is missing, when
    there is no record, or when ``model`` has no boundary conditions.
    """
    if not isinstance(metadata, Mapping) or not model.boundary_spec:
        return ()
    # The record is read strictly: a string "false" is not a setting that was off (nor one that was on).
    for name in ("kernel_correction", "hidden_values"):
        if metadata.get(name) is not None:
            check_bool(metadata[name], f"the metadata's {name}")
    saved = metadata.get("boundary")  # condition configs in a record; a bool in a source model's live settings
    if saved is not None and not isinstance(saved, bool) and (
            isinstance(saved, str) or not isinstance(saved, (Sequence, Mapping))):
        raise TypeError(f"the metadata's boundary must be a list of condition configs or None, got {saved!r}")
    saved_with_boundary = saved is True or (saved is not None and saved is not False and len(saved) > 0)
    return tuple(f"{name}=True" for name in ("kernel_correction", "hidden_values")
                 if getattr(model, name) and not (saved_with_boundary and metadata.get(name) is True))
