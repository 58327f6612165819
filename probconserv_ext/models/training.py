"""A small training loop for the probabilistic FNOs (Adam, cosine schedule, tqdm progress)."""

import torch
from tqdm.auto import tqdm

from ..losses import _nll_log_var
from ._seeding import check_seed
from .ensemble import FNOEnsemble
from .heteroscedastic import HeteroscedasticFNO

__all__ = ["fit_ensemble", "fit_heteroscedastic"]


def _check_data(inputs, targets):
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3:
        raise ValueError(f"inputs must be a tensor of shape (n, channels, nx), got {getattr(inputs, 'shape', inputs)}")
    if not isinstance(targets, torch.Tensor) or targets.ndim != 3 or targets.shape[0] != inputs.shape[0] \
            or targets.shape[-1] != inputs.shape[-1]:
        raise ValueError(
            f"targets must be a tensor of shape (n, C, nx) matching inputs {tuple(inputs.shape)}, "
            f"got {getattr(targets, 'shape', targets)}")
    if not (torch.isfinite(inputs).all() and torch.isfinite(targets).all()):
        raise ValueError("inputs and targets must be finite (no NaN or inf)")


def _fit(model, loss_fn, inputs, targets, epochs, lr, batch_size, seed, desc, progress):
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a positive finite float, got {lr!r}")
    check_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    # data order from a local generator: training never reads or advances the caller's global random state
    gen = torch.Generator().manual_seed(seed)
    n = inputs.shape[0]
    losses = []
    bar = tqdm(range(epochs), desc=desc, leave=False, disable=not progress)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(epoch, inputs[idx], targets[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / n)
        bar.set_postfix(loss=f"{losses[-1]:.3e}")
    return losses


def fit_ensemble(model, inputs, targets, epochs=200, lr=3e-3, batch_size=32, seed=0, progress=True):
    """Train every member of an :class:`FNOEnsemble` on the MSE with its own data order.

    Parameters
    ----------
    model : FNOEnsemble
    inputs : torch.Tensor, shape (n, in_channels, nx)
    targets : torch.Tensor, shape (n, out_channels, nx)
    epochs, batch_size : int
    seed : int
        Member ``i`` shuffles its data with a local generator seeded ``seed + 1000 i``; the global random state is
        neither read nor changed, so the same seed and model give the same trained weights.
    lr : float
    progress : bool
        Show tqdm bars.

    Returns
    -------
    list of list of float
        Per-member training loss per epoch.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`FNOEnsemble` or ``seed`` not an integer.
    ValueError
        For badly shaped or non-finite data, or a non-positive ``epochs``, ``batch_size`` or ``lr``.
    """
    if not isinstance(model, FNOEnsemble):
        raise TypeError(f"model must be an FNOEnsemble, got {type(model).__name__}")
    _check_data(inputs, targets)
    model.train()
    histories = []
    for i, member in enumerate(model.members):
        def loss_fn(epoch, x, y, member=member):
            return torch.mean((member(x) - y) ** 2)
        histories.append(_fit(member, loss_fn, inputs, targets, epochs, lr, batch_size, seed + 1000 * i,
                              f"member {i + 1}/{model.n_members}", progress))
    model.eval()
    return histories


def fit_heteroscedastic(model, inputs, targets, epochs=200, lr=3e-3, batch_size=32, seed=0, warmup=0.3,
                        progress=True):
    """Train a :class:`HeteroscedasticFNO`: MSE on the mean first, then the Gaussian NLL (:func:`gaussian_nll`).

    The warm-up fits the mean before the variance can explain residuals away (a known failure mode of
    likelihood training from scratch, where large early variances stall the mean).

    Parameters
    ----------
    model : HeteroscedasticFNO
    inputs : torch.Tensor, shape (n, in_channels, nx)
    targets : torch.Tensor, shape (n, out_channels, nx)
    epochs, batch_size : int
    seed : int
        Seed of the local generator that shuffles the data (the global random state is neither read nor changed).
    lr : float
    warmup : float
        Fraction of the epochs spent on the MSE of the mean, in [0, 1).
    progress : bool

    Returns
    -------
    list of float
        Training loss per epoch.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`HeteroscedasticFNO` or ``seed`` not an integer.
    ValueError
        For badly shaped or non-finite data, a bad ``warmup``, or a non-positive ``epochs``, ``batch_size`` or
        ``lr``.
    """
    if not isinstance(model, HeteroscedasticFNO):
        raise TypeError(f"model must be a HeteroscedasticFNO, got {type(model).__name__}")
    _check_data(inputs, targets)
    if not (isinstance(warmup, (int, float)) and 0 <= warmup < 1):
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    n_warm = int(warmup * epochs)
    model.train()

    def loss_fn(epoch, x, y):
        mean, log_var = model(x)
        if epoch < n_warm:
            return torch.mean((mean - y) ** 2)
        # gaussian_nll in its log-variance form (no exp/log round trip)
        return _nll_log_var(mean, log_var, y)

    hist = _fit(model, loss_fn, inputs, targets, epochs, lr, batch_size, seed, "heteroscedastic", progress)
    model.eval()
    return hist
