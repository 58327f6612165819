"""A small training loop for the probabilistic FNOs (Adam, cosine schedule, tqdm progress)."""

from typing import Callable, List

import torch
from torch import nn
from tqdm.auto import tqdm

from _physics_constrained.validation import (check_bool, check_finite, check_fraction, check_int, check_real,
                                              check_tensor)
from ..losses import _nll_log_var
from .ensemble import FNOEnsemble
from .heteroscedastic import HeteroscedasticFNO

__all__ = ["fit_ensemble", "fit_heteroscedastic"]

# loss_fn(epoch, inputs, targets) -> scalar loss of one batch
_LossFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class _TrainingRun:
    """The checked arguments both fits share: the data and the optimiser's settings."""

    def __init__(self, model: nn.Module, kind: type, inputs: torch.Tensor, targets: torch.Tensor, epochs: int,
                 lr: float, batch_size: int, seed: int) -> None:
        if not isinstance(model, kind):
            raise TypeError(f"model must be a {kind.__name__}, got {type(model).__name__}")
        check_tensor(inputs, "inputs", ndim=3, layout="(n, channels, nx)")
        check_tensor(targets, "targets", layout=f"(n, C, nx) matching inputs {tuple(inputs.shape)}")
        c_in = model._fno_args["in_channels"]
        if inputs.shape[0] < 1 or inputs.shape[1] != c_in or inputs.shape[2] < 1:
            raise ValueError(f"inputs must be a tensor of shape (n >= 1, in_channels = {c_in}, nx >= 1), got shape "
                             f"{tuple(inputs.shape)}")
        c = model.out_channels
        if targets.ndim != 3 or targets.shape != (inputs.shape[0], c, inputs.shape[2]):
            raise ValueError(f"targets must be a tensor of shape (n, C, nx) = {(inputs.shape[0], c, inputs.shape[2])} "
                             f"matching inputs {tuple(inputs.shape)} and the model's C = {c} fields, "
                             f"got shape {tuple(targets.shape)}")
        self.inputs, self.targets = check_finite(inputs, "inputs"), check_finite(targets, "targets")
        self.epochs = check_int(epochs, "epochs", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.lr = check_real(lr, "lr", positive=True)
        self.seed = check_int(seed, "seed", minimum=0)

    def run(self, params: nn.Module, loss_fn: _LossFn, seed: int, desc: str, progress: bool) -> List[float]:
        """Adam with a cosine schedule on ``params``' parameters; the data order drawn from ``seed``.

        Returns the mean loss per epoch.
        """
        opt = torch.optim.Adam(params.parameters(), lr=self.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        # data order from a local generator: training never reads or advances the caller's global random state
        gen = torch.Generator().manual_seed(seed)
        n = self.inputs.shape[0]
        losses = []
        bar = tqdm(range(self.epochs), desc=desc, leave=False, disable=not progress)
        for epoch in bar:
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = perm[start:start + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(epoch, self.inputs[idx], self.targets[idx])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            sched.step()
            losses.append(total / n)
            bar.set_postfix(loss=f"{losses[-1]:.3e}")
        return losses


def fit_ensemble(model: FNOEnsemble, inputs: torch.Tensor, targets: torch.Tensor, epochs: int = 200,
                 lr: float = 3e-3, batch_size: int = 32, seed: int = 0, progress: bool = True) -> List[List[float]]:
    """Train every member of an :class:`FNOEnsemble` on the MSE with its own data order.

    Parameters
    ----------
    model : FNOEnsemble
    inputs : torch.Tensor, shape (n, in_channels, nx)
        Finite.
    targets : torch.Tensor, shape (n, out_channels, nx)
        Finite.
    epochs, batch_size : int
        At least 1.
    lr : float
        Adam's initial step size (> 0), decayed to 0 on a cosine schedule.
    seed : int
        Member ``i`` shuffles its data with a local generator seeded ``seed + 1000 i``; the global random state is
        neither read nor changed, so the same seed and model give the same trained weights.
    progress : bool
        Show tqdm bars.

    Returns
    -------
    list of list of float
        Per-member training loss per epoch.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`FNOEnsemble`, or an argument is of the wrong kind.
    ValueError
        For badly shaped or non-finite data, or a non-positive ``epochs``, ``batch_size`` or ``lr``, or a negative
        ``seed``.
    """
    training = _TrainingRun(model, FNOEnsemble, inputs, targets, epochs, lr, batch_size, seed)
    progress = check_bool(progress, "progress")
    model.train()
    histories = []
    for i, member in enumerate(model.members):
        def loss_fn(epoch: int, x: torch.Tensor, y: torch.Tensor, member: nn.Module = member) -> torch.Tensor:
            return torch.mean((member(x) - y) ** 2)
        histories.append(training.run(member, loss_fn, training.seed + 1000 * i,
                                      f"member {i + 1}/{model.n_members}", progress))
    model.eval()
    return histories


def fit_heteroscedastic(model: HeteroscedasticFNO, inputs: torch.Tensor, targets: torch.Tensor, epochs: int = 200,
                        lr: float = 3e-3, batch_size: int = 32, seed: int = 0, warmup: float = 0.3,
                        progress: bool = True) -> List[float]:
    """Train a :class:`HeteroscedasticFNO`: MSE on the mean first, then the Gaussian NLL (:func:`gaussian_nll`).

    The warm-up fits the mean before the variance can explain residuals away (a known failure mode of
    likelihood training from scratch, where large early variances stall the mean).

    Parameters
    ----------
    model : HeteroscedasticFNO
    inputs, targets, epochs, lr, batch_size, progress
        As for :func:`fit_ensemble`.
    seed : int
        Seed of the local generator that shuffles the data (the global random state is neither read nor changed).
    warmup : float
        Fraction of the epochs spent on the MSE of the mean, in [0, 1).

    Returns
    -------
    list of float
        Training loss per epoch.

    Raises
    ------
    TypeError, ValueError
        As :func:`fit_ensemble` (for a :class:`HeteroscedasticFNO`), and for a bad ``warmup``.
    """
    training = _TrainingRun(model, HeteroscedasticFNO, inputs, targets, epochs, lr, batch_size, seed)
    progress = check_bool(progress, "progress")
    n_warm = int(check_fraction(warmup, "warmup", include_one=False) * training.epochs)
    model.train()

    def loss_fn(epoch: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean, log_var = model(x)
        if epoch < n_warm:
            return torch.mean((mean - y) ** 2)
        # gaussian_nll in its log-variance form (no exp/log round trip)
        return _nll_log_var(mean, log_var, y)

    hist = training.run(model, loss_fn, training.seed, "heteroscedastic", progress)
    model.eval()
    return hist
