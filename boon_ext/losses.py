"""A loss adapter for neuralop's ``Trainer``: the loss sees the prediction and the target, not the inputs.

neuralop's ``Trainer`` calls ``training_loss(out, **sample)`` with every key of the batch. A BOON sample holds
``x``, ``y`` and ``boundary_values``, and neuralop's data losses (``LpLoss``, ``H1Loss``, ``MSELoss``) warn once
per batch about the keys they do not read. :class:`TargetLoss` drops the input keys that are known to be the
model's (and only those), so a training run is warning-free without silencing warnings globally.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sample_keys import FLAT_PREFIX

__all__ = ["TargetLoss"]

# Keys of a BOON sample that the model reads and a data loss does not.
MODEL_INPUT_KEYS = ("x", "boundary_values")


class TargetLoss:
    """Wrap a loss ``loss(y_pred, y, **kw)`` so that the sample's model-input keys do not reach it.

    Parameters
    ----------
    loss : callable
        The loss to wrap, e.g. ``neuralop.losses.LpLoss(d=1)``.
    drop : sequence of str, default ("x", "boundary_values")
        Sample keys removed before calling ``loss``. Other keyword arguments are passed on unchanged, so a
        loss that reads more than ``(y_pred, y)`` (e.g. ``H1Loss``'s ``quadrature``) still gets them, and a
        key nobody reads is still reported by the wrapped loss.

    Raises
    ------
    TypeError
        If ``loss`` is not callable or ``drop`` is not a sequence of strings.
    ValueError
        If ``drop`` names ``"y"`` (the target must reach the loss).

    Examples
    --------
    >>> from neuralop.losses import LpLoss
    >>> loss = TargetLoss(LpLoss(d=1))
    >>> # trainer.train(..., training_loss=loss, eval_losses={"l2": loss})
    """

    def __init__(self, loss, drop: Sequence[str] = MODEL_INPUT_KEYS):
        if not callable(loss):
            raise TypeError(f"loss must be callable (a loss object or function), got {type(loss).__name__}")
        if isinstance(drop, str) or not isinstance(drop, Sequence) or not all(isinstance(k, str) for k in drop):
            raise TypeError(f"drop must be a sequence of sample key names (str), got {drop!r}")
        if "y" in drop:
            raise ValueError("drop must not contain 'y': the target is the loss's second argument")
        self.loss = loss
        self.drop = tuple(drop)

    @property
    def reduction(self):
        """The wrapped loss's ``reduction`` (the ``Trainer`` checks it to warn about batch means)."""
        return getattr(self.loss, "reduction", None)

    def __call__(self, y_pred, y=None, **kwargs):
        """Return ``loss(y_pred, y, **rest)``, ``rest`` being ``kwargs`` without the dropped keys.

        Parameters
        ----------
        y_pred : torch.Tensor
            Model output.
        y : torch.Tensor
            Target.
        **kwargs
            Other sample keys.

        Returns
        -------
        torch.Tensor
            The wrapped loss's value.

        Raises
        ------
        TypeError
            If no target ``y`` is given.
        """
        if y is None:
            raise TypeError("y (the target) must be given: call the loss as loss(y_pred, y) or loss(y_pred, **sample)")
        # Flat boundary values ("boundary_values.left") are model inputs too.
        rest = {k: v for k, v in kwargs.items() if k not in self.drop
                and not (isinstance(k, str) and k.startswith(FLAT_PREFIX) and "boundary_values" in self.drop)}
        return self.loss(y_pred, y, **rest)

    def __repr__(self):
        return f"TargetLoss({self.loss!r}, drop={list(self.drop)!r})"
