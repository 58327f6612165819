"""Switching a wrapped model to the full BOON kernel correction, and the warning when that would cost accuracy.

Weights trained without the kernel correction (a plain FNO/TFNO) have never seen the corrected face inputs:
T2 changes every layer's face input by several times the field, and such a model gets several times less
accurate when the correction is switched on as it is. :func:`finetune_kernel_correction` switches it on and
retrains the weights for a few epochs so the model gets its accuracy back.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch

from _physics_constrained.validation import check_bool, check_int, check_real

from .models import BOONFNO
from .untrained import BoundaryAccuracyWarning, warn_untrained_settings

__all__ = ["BoundaryAccuracyWarning", "finetune_kernel_correction", "warn_untrained_settings"]
# The warning lives in .untrained, which the models and the checkpoint readers import too; re-exported here.


def finetune_kernel_correction(
    model,
    train_loader: Iterable,
    epochs: int = 10,
    *,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    loss: Optional[Callable] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler=None,
    callback: Optional[Callable] = None,
    progress: bool = True,
):
    """Switch a wrapped model to the BOON kernel correction and fine-tune its weights for ``epochs`` epochs.

    Parameters
    ----------
    model : BOONFNO or BOONTFNO
        A wrapped model, typically from ``BOONFNO.from_fno`` / ``from_checkpoint`` of a plain checkpoint.
        Its ``kernel_correction`` is set to True (also in the metadata its checkpoints record).
    train_loader : iterable of dict
        Batches ``{"x": ..., "y": ..., "boundary_values": {...}}`` (the layout of
        :class:`boon_ext.datasets.BoundaryProblemDataset` and neuralop's Trainer); ``boundary_values`` may be
        left out when every face has a constant value.
    epochs : int, default 10
        Passes over ``train_loader`` (measured: about 10 epochs bring a wrapped FNO back to its plain accuracy,
        see ``docs/boon_design.md``).
    lr, weight_decay : float
        Adam settings, used when ``optimizer`` is None.
    loss : callable, optional
        ``loss(pred, y)``; default neuralop's relative L2 loss ``LpLoss(d=n_dim, p=2)``.
    optimizer : torch.optim.Optimizer, optional
        Over ``model``'s parameters; default Adam with ``lr`` and ``weight_decay``.
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Stepped once per epoch; default cosine annealing of the learning rate to 0 over ``epochs`` (a trained
        model is near a minimum: a constant rate keeps it jumping around the plain model's accuracy).
    callback : callable, optional
        ``callback(epoch, model, mean_loss)`` after each epoch (e.g. a validation error); the model is set back to
        training mode afterwards.
    progress : bool, default True
        Show a tqdm progress bar over the epochs, with the mean training loss.

    Returns
    -------
    list of float
        Training loss per epoch (mean over its batches; neuralop's ``LpLoss`` sums over a batch's samples). ``model`` is trained in place and left in eval mode.

    Raises
    ------
    TypeError
        ``model`` is not a BOON model, or ``epochs``/``lr`` have the wrong type.
    ValueError
        ``model`` has no boundary conditions, ``epochs``/``lr`` are not positive, or a batch lacks ``x``/``y``.
    """
    if not isinstance(model, BOONFNO):
        raise TypeError(f"model must be a BOONFNO or BOONTFNO, got {type(model).__name__}")
    if not model.boundary_spec:
        raise ValueError("model must have boundary conditions (a kernel correction to train), got boundary=None")
    epochs = check_int(epochs, "epochs", minimum=1)
    lr = check_real(lr, "lr", positive=True)
    weight_decay = check_real(weight_decay, "weight_decay", nonnegative=True)
    progress = check_bool(progress, "progress")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be callable (loss(pred, y)) or None, got {type(loss).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (callback(epoch, model, mean_loss)) or None, got "
                        f"{type(callback).__name__}")
    if loss is None:
        from neuralop.losses import LpLoss

        loss = LpLoss(d=model.n_dim, p=2)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if scheduler is None:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    model.kernel_correction = True  # the setter records it in the metadata and clears the operator cache
    device = next(model.parameters()).device
    history = []
    epochs_iter = range(epochs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(epochs_iter, desc="fine-tuning BOON kernel correction", unit="epoch")
        epochs_iter = bar
    for epoch in epochs_iter:
        model.train()
        total, count = 0.0, 0
        for batch in train_loader:
            if not isinstance(batch, dict) or "x" not in batch or "y" not in batch:
                raise ValueError("train_loader must yield dicts with keys 'x' and 'y' (and 'boundary_values')")
            x, y = batch["x"].to(device), batch["y"].to(device)
            bv = batch.get("boundary_values") or None
            if bv is not None:
                bv = {k: v.to(device) for k, v in bv.items()}
            value = loss(model(x, boundary_values=bv), y)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            total += float(value.detach())
            count += 1
        if count == 0:
            raise ValueError("train_loader must yield at least one batch, got none")
        scheduler.step()
        history.append(total / count)
        if callback is not None:
            callback(epoch, model, history[-1])
        if bar is not None:
            bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history
