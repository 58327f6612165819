"""One training run of the BOON reproduction, and the records that identify it (``experiments/reproduce_boon.py``).

``train`` is the loop (Adam, step decay, relative-L2 loss, the convergence criterion, checkpoints that resume bit for
bit); ``run_key`` fingerprints the settings a run depends on, so that only runs with the current settings are
resumed, kept or compared.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path

import torch

from boon_ext import load_checkpoint_file
from boon_ext.checkpoint import check_state_fits
from experiments.boon_campaign.configurations import MODEL_KWARGS, STOKES_VISCOSITY, _sizes, architecture
from experiments.boon_campaign.metrics import _batch_values, _call, predict, relative_l2
from experiments.provenance import git_commit


def convergence(best_curve, patience, tol):
    """Whether the best validation error improved by less than ``tol`` (relative) over the last ``patience`` epochs.

    Parameters
    ----------
    best_curve : sequence of float
        Best validation error so far, per epoch.
    patience : int
    tol : float

    Returns
    -------
    (bool, float or None)
        The criterion, and the relative improvement over the window (None before ``patience + 1`` epochs).
    """
    if len(best_curve) <= patience:
        return False, None
    before, now = best_curve[-1 - patience], best_curve[-1]
    improvement = (before - now) / max(before, 1e-30)
    return improvement < tol, float(improvement)


def best_so_far(best_curve, val):
    """The best validation error after an epoch with error ``val``, given the curve so far.

    A non-finite ``val`` (a diverged epoch) is not an improvement: ``min(nan, best)`` would be nan and replace the
    best so far, and ``min(val, nan)`` would then take the next error, however bad, as the best. The best is
    non-finite only while no epoch has had a finite error.

    Parameters
    ----------
    best_curve : sequence of float
        Best validation error so far, per epoch (empty before the first).
    val : float
        This epoch's validation error.

    Returns
    -------
    float
    """
    if not best_curve or not math.isfinite(best_curve[-1]):
        return val
    return val if math.isfinite(val) and val < best_curve[-1] else best_curve[-1]


def _state_for_checkpoint(model):
    state = model.state_dict()
    state.pop("_metadata", None)  # neuralop's metadata holds functions and classes: not weights-only loadable
    return state


def train(model, problem, prob, cfg, seed, schedule, ckpt_path=None, log=None, keys=(), stop_after=None,
          indices=None):
    """Adam + step decay on the relative L2 loss, with per-epoch curves and the convergence criterion.

    ``stop_after``: train only the first epochs of the run (``campaign.verify_runs``); everything else, the
    learning rate schedule included, is the run's.

    ``keys``: the fingerprints under which a checkpoint at ``ckpt_path`` is resumed (see :func:`resumable_keys`);
    checkpoints are written under the first.

    ``indices``: ``(train, val, test)`` sample indices (the hard-regime campaign's splits, iid or ordered by a
    parameter); default: the first ``n_train`` samples train, the next ``n_val`` validate, the next ``n_test`` test.

    Returns
    -------
    dict
        ``epochs``, ``train_loss``, ``val_rel_l2``, ``test_rel_l2`` (per epoch), ``converged``,
        ``improvement`` (over the last window), ``stopped_early``, ``train_seconds``.
    """
    from neuralop.losses import LpLoss

    if isinstance(keys, str):  # `in` would test substrings, and keys[0] be one character
        raise TypeError(f"keys: expected a sequence of fingerprints (resumable_keys), got the str {keys!r}")
    device = next(model.parameters()).device
    if indices is None:
        n_train, n_val, n_test = _sizes(cfg, prob)
        train_idx = torch.arange(n_train)
        val_idx = list(range(n_train, n_train + n_val))
        test_idx = list(range(n_train + n_val, n_train + n_val + n_test))
    else:
        train_idx, val_idx, test_idx = (torch.as_tensor(indices[0], dtype=torch.long), list(indices[1]),
                                        list(indices[2]))
        n_train = len(train_idx)
    loss_fn = LpLoss(d=problem.x.ndim - 2, p=2)  # relative L2, summed over the batch
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg["step_size"], gamma=cfg["gamma"])
    gen = torch.Generator().manual_seed(seed)
    hist = dict(train_loss=[], val_rel_l2=[], test_rel_l2=[], best_val=[], train_seconds=0.0)
    start_epoch = 0
    ck = None
    if ckpt_path is not None and Path(ckpt_path).exists():
        # The package's reader: a checkpoint can neither run code nor make the reader allocate beyond its size.
        ck = load_checkpoint_file(ckpt_path, map_location="cpu")
        missing = (sorted({"key", "model", "optimizer", "scheduler", "generator", "history", "epoch"} - set(ck))
                   if isinstance(ck, dict) else None)
        if missing is None or missing:
            raise ValueError(f"{ckpt_path} is not a training checkpoint of this script: "
                             + (f"it holds a {type(ck).__name__}" if missing is None else f"it lacks {missing}"))
    if ck is not None and ck.get("key") not in keys:
        if log:
            log(f"  {Path(ckpt_path).name} was written with other settings: ignored, training from the start")
        ck = None
    if ck is not None:
        check_state_fits(model, ck["model"], f"{Path(ckpt_path).name}['model']")  # entries, shapes, dtypes named
        model.load_state_dict(ck["model"], strict=True)
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        hist = ck["history"]
        start_epoch = int(ck["epoch"])
        if log:
            log(f"  resumed from {Path(ckpt_path).name} at epoch {start_epoch}")
    converged, improvement = convergence(hist["best_val"], cfg["patience"], cfg["tol"])
    stopped_early = False
    last = cfg["max_epochs"] if stop_after is None else min(int(stop_after), cfg["max_epochs"])
    for epoch in range(start_epoch, last):
        if schedule == "converge" and converged and epoch >= cfg.get("min_epochs", 0):
            stopped_early = True
            break
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        for idx in train_idx[torch.randperm(n_train, generator=gen)].split(cfg["batch_size"]):
            x, y = problem.x[idx].to(device), problem.y[idx].to(device)
            optimizer.zero_grad(set_to_none=True)
            out = _call(model, x, _batch_values(problem, idx, device=device))
            loss = loss_fn(out, y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + len(idx)
        scheduler.step()
        hist["train_seconds"] += time.perf_counter() - t0
        hist["train_loss"].append(total / count)
        val = relative_l2(predict(model, problem, val_idx), problem.y[val_idx])
        hist["val_rel_l2"].append(val)
        hist["test_rel_l2"].append(relative_l2(predict(model, problem, test_idx), problem.y[test_idx]))
        hist["best_val"].append(best_so_far(hist["best_val"], val))
        converged, improvement = convergence(hist["best_val"], cfg["patience"], cfg["tol"])
        every = cfg.get("checkpoint_every", 0)
        if ckpt_path is not None and every and (epoch + 1) % every == 0 and epoch + 1 < cfg["max_epochs"]:
            tmp = Path(str(ckpt_path) + ".tmp")
            torch.save(dict(model=_state_for_checkpoint(model), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), generator=gen.get_state(), history=hist,
                            epoch=epoch + 1, key=keys[0] if keys else None), tmp)
            os.replace(tmp, ckpt_path)  # atomic: an interruption leaves the previous checkpoint intact
        if log and ((epoch + 1) % max(1, cfg["max_epochs"] // 10) == 0):
            log(f"  epoch {epoch + 1}: train {hist['train_loss'][-1]:.4f} val {val:.4f} test "
                f"{hist['test_rel_l2'][-1]:.4f}")
    return dict(epochs=len(hist["train_loss"]), train_loss=hist["train_loss"], val_rel_l2=hist["val_rel_l2"],
                test_rel_l2=hist["test_rel_l2"], converged=bool(converged), improvement=improvement,
                stopped_early=stopped_early, train_seconds=hist["train_seconds"])


def run_key(cfg, prob, model, schedule, legacy=False):
    """Fingerprint of everything that determines a run (seed aside), to resume only matching runs.

    ``legacy=True``: the fingerprint as computed before ``min_epochs`` existed (see :func:`_valid_under_min_epochs`).
    """
    st = prob == "stokes_spacetime"
    relevant = dict(
        problem=prob, model=model, model_kwargs=MODEL_KWARGS[model], schedule=schedule,
        sizes=_sizes(cfg, prob), n_points=cfg["n_points"][prob], n_times=cfg["n_times"] if st else None,
        arch=architecture(cfg, prob), viscosity=STOKES_VISCOSITY.get(prob),
        **{k: cfg[k] for k in ("batch_size", "max_epochs", "step_size", "gamma", "lr", "weight_decay", "patience",
                               "tol")},
    )
    if not legacy:
        relevant["min_epochs"] = cfg.get("min_epochs", 0)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resumable_keys(cfg, prob, model, schedule):
    """The fingerprints under which a run's checkpoint is resumed: the current one, then the legacy one.

    A checkpoint under the legacy fingerprint is of a run that had not stopped: the current rule, which stops no
    earlier, has it at the same point (see :func:`_valid_under_min_epochs`).
    """
    return run_key(cfg, prob, model, schedule), run_key(cfg, prob, model, schedule, legacy=True)


def _valid_under_min_epochs(record, cfg):
    """Whether a run recorded under the legacy fingerprint is what the current settings would train.

    Before ``min_epochs`` a ``converge`` run stopped at the first epoch the criterion held. Under the current rule
    it stops at the first such epoch from ``min_epochs`` on; so a run that stopped at or after ``min_epochs``, or
    never stopped early, follows the same trajectory to the same end, and only its fingerprint is out of date.
    """
    if record.get("stopped_early") is None or record.get("epochs") is None:
        return False
    return (not record["stopped_early"]) or record["epochs"] >= cfg.get("min_epochs", 0)


def _write_json(path, record):
    """Write ``record`` to ``path`` atomically: an interruption leaves the previous file intact."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def _current(record, path, cfg, prob, model, schedule, write=True):
    """``record`` (read from ``path``) if it has the current settings, updating a legacy fingerprint that still
    holds (in the file too, the old one kept as ``key_before``, unless ``write=False``); else ``None``."""
    key = run_key(cfg, prob, model, schedule)
    if record.get("key") == key:
        return record
    if record.get("key") == run_key(cfg, prob, model, schedule, legacy=True) and _valid_under_min_epochs(record, cfg):
        record = dict(record, key_before=record["key"], key=key)
        if write:
            _write_json(path, record)
        return record
    return None


def finished_run(path, cfg, prob, model, schedule, write=True):
    """The finished run at ``path`` if it has the current settings (see :func:`_current`), else ``None``."""
    if not path.exists():
        return None
    return _current(json.loads(path.read_text()), path, cfg, prob, model, schedule, write)


def _run_name(prob, model, seed):
    return f"{prob}_{model}_s{seed}"


# The code a BOON run's figures depend on: an uncommitted change there marks the records it writes.
BOON_CODE = ("experiments/reproduce_boon.py", "experiments/boon_campaign", "boon_ext")


def _git_commit(paths=BOON_CODE, where="boon_ext/ or the BOON experiment scripts"):
    """:func:`experiments.provenance.git_commit` over the BOON reproduction's code."""
    return git_commit(paths, where)

