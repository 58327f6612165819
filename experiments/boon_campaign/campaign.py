"""Running the BOON reproduction as a campaign: claims, parallel workers, status and verification.

A campaign trains many independent runs over several sessions and processes into one folder: ``claim_run`` keeps
two processes from training the same run, ``train_one`` is the unit of work a worker does, ``campaign_status`` says
what is finished and what is left, and ``verify_runs`` retrains the first epochs of finished runs to check that the
committed records are what the current code trains.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from boon_ext import load_checkpoint_file
from experiments.boon_campaign.configurations import MODELS, _sizes, architecture, build_model, check_selection, \
    defined, make_problem, training_order
from experiments.boon_campaign.metrics import evaluate
from experiments.boon_campaign.training import _git_commit, _run_name, _write_json, finished_run, resumable_keys, \
    run_key, train
from experiments.provenance import machine_description


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def claim_held(path):
    """Whether the claim file ``path`` is held: it exists and its process is alive or on another host.

    An unreadable or half-written claim (its owner is between creating and writing it) counts as held.
    """
    try:
        owner = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    if not isinstance(owner, dict) or owner.get("host") != platform.node() or not isinstance(owner.get("pid"), int):
        return True
    return _pid_alive(owner["pid"])


def claim_run(runs_dir, name):
    """Claim run ``name`` for this process (``runs/<name>.claim``, created atomically); ``None`` if taken.

    Several calls may train into one ``--out`` at once (``--jobs``, or separate commands on other problems,
    models or seeds): a claim keeps two of them from training the same run. A claim left by a process that no
    longer runs on this host (killed, or the session ended) is taken over; one from another host is respected,
    since its process cannot be checked from here.

    Returns
    -------
    Path or None
        The claim file (delete it when the run ends), or ``None`` if a live process holds the run.
    """
    path = Path(runs_dir) / f"{name}.claim"
    host = platform.node()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not claim_held(path):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            return None
        with os.fdopen(fd, "w") as f:
            json.dump(dict(pid=os.getpid(), host=host), f)
        return path
    return None


def campaign_status(out, problems, models, cfg, schedule):
    """Where a reproduction stands in ``out``: every selected run finished, in training, or still to train.

    Reads the run files, claims and checkpoints only: it trains, generates and writes nothing. The time left is
    estimated from finished runs, as the median training seconds per epoch of the same problem and model (of the
    problem, any model, where the model has none), times the epochs up to ``max_epochs``. It omits the per-epoch
    evaluation (about a tenth more) and counts every epoch, though ``--schedule converge`` may stop from
    ``min_epochs`` on: an estimate, not a bound.

    Returns
    -------
    list of dict
        One per (seed, model, problem) in training order: ``name``, ``state`` (``"finished"``, ``"training"``,
        ``"interrupted"`` (a checkpoint nobody holds), ``"pending"`` or ``"not defined"``), ``epoch`` (of the
        checkpoint, or the final one), ``rel_l2`` (finished runs) and ``seconds_left`` (``None`` where no run of
        the problem has finished).

    Raises
    ------
    ValueError
        Unknown problem, model or schedule.
    """
    check_selection(problems, models, schedule)
    runs_dir = Path(out) / "runs"
    rates = {}  # (problem, model) -> seconds per epoch of finished runs
    for prob in problems:
        for m in MODELS:
            for path in runs_dir.glob(f"{_run_name(prob, m, '*')}.json"):
                r = finished_run(path, cfg, prob, m, schedule, write=False)
                if r is not None and r.get("epochs"):
                    rates.setdefault((prob, m), []).append(r["train_seconds"] / r["epochs"])

    def rate(prob, m):
        own = rates.get((prob, m)) or [v for (p, _), vs in rates.items() if p == prob for v in vs]
        return float(np.median(own)) if own else None

    rows = []
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        if not defined(m, prob)[0]:
            rows.append(dict(name=name, state="not defined", epoch=None, rel_l2=None, seconds_left=0.0))
            continue
        done = finished_run(runs_dir / f"{name}.json", cfg, prob, m, schedule, write=False)
        if done is not None:
            rows.append(dict(name=name, state="finished", epoch=done.get("epochs"), rel_l2=done.get("rel_l2"),
                             seconds_left=0.0))
            continue
        epoch, ckpt = 0, runs_dir / f"{name}.ckpt.pt"
        if ckpt.exists():
            try:
                ck = load_checkpoint_file(ckpt, map_location="cpu")
            except Exception:  # noqa: BLE001  (being replaced at this moment, or damaged: counted from the start)
                ck = {}
            if not isinstance(ck, dict):
                ck = {}
            if ck.get("key") in resumable_keys(cfg, prob, m, schedule):  # what train() would resume
                epoch = int(ck.get("epoch", 0))
        held = claim_held(runs_dir / f"{name}.claim")
        state = "training" if held else ("interrupted" if epoch else "pending")
        per_epoch = rate(prob, m)
        left = None if per_epoch is None else per_epoch * (cfg["max_epochs"] - epoch)
        rows.append(dict(name=name, state=state, epoch=epoch, rel_l2=None, seconds_left=left))
    return rows


CURVES = ("train_loss", "val_rel_l2", "test_rel_l2")


def verify_runs(out, problems, models, cfg, schedule, epochs, cache_dir=None, device="cpu", log=None):
    """Retrain the first ``epochs`` epochs of every selected finished run in ``out`` and compare the curves.

    Every run is seeded (initial weights, batch order), so the same code, torch build and thread count give the
    recorded curves bit for bit; a difference means the code, the data or the platform changed since the run.
    Cheap evidence that the committed runs start as the current code trains them, without training them again in
    full. Each run is retrained with the thread count it records (runs from before that was recorded: the
    caller's, which must then be the one they were trained with: 1 in ``--jobs`` campaigns).

    Parameters
    ----------
    out : str or Path
        A reproduction's folder (its ``runs/`` and data cache).
    problems, models : sequence of str
        Which runs to check (those not finished are skipped).
    cfg : dict
        The configuration the runs were trained with (``configurations.make_config``).
    schedule : str
        Their schedule.
    epochs : int
        Epochs to retrain per run (fewer where the run stopped earlier).
    cache_dir : str or Path, optional
        Data cache (default ``<out>/data``).

    Returns
    -------
    list of dict
        ``name``, ``epochs`` (compared), ``identical`` (every curve equal bit for bit), ``max_rel_diff`` (over
        the three curves), ``recorded_commit`` and ``seconds``.

    Raises
    ------
    ValueError
        Unknown problem, model or schedule, ``epochs`` below 1, or no finished run in ``out`` with these settings
        (the error lists run files of the selection trained with other settings).
    """
    check_selection(problems, models, schedule)
    if int(epochs) < 1:
        raise ValueError(f"epochs (--verify): expected a positive number of epochs to retrain, got {epochs!r}")
    out = Path(out)
    cache_dir = Path(cache_dir) if cache_dir is not None else out / "data"
    rows, data, other = [], {}, []
    for seed, m, prob in training_order(cfg["seeds"], models, problems):
        name = _run_name(prob, m, seed)
        path = out / "runs" / f"{name}.json"
        record = finished_run(path, cfg, prob, m, schedule, write=False)
        if record is None and path.exists():
            other.append(name)
        if record is None or "not_defined" in record or not record.get("epochs"):
            continue
        n = min(int(epochs), record["epochs"])
        if prob not in data:
            data[prob] = make_problem(prob, cfg, cache_dir)[0]
        problem = data[prob]
        model = build_model(m, problem, architecture(cfg, prob), seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(record.get("threads", threads))
        t0 = time.perf_counter()
        try:
            hist = train(model.to(device), problem, prob, cfg, seed, schedule, stop_after=n)
        finally:
            torch.set_num_threads(threads)
        new = np.array([hist[k][:n] for k in CURVES], dtype=float)
        old = np.array([record[k][:n] for k in CURVES], dtype=float)
        both = np.isfinite(new) & np.isfinite(old)
        diff = np.abs(new - old)[both] / np.maximum(np.abs(old[both]), 1e-30)
        row = dict(name=name, epochs=n, identical=bool(np.array_equal(new, old, equal_nan=True)),
                   max_rel_diff=float(diff.max(initial=0.0)), recorded_commit=record.get("commit"),
                   threads=record.get("threads"), seconds=time.perf_counter() - t0)
        rows.append(row)
        if log:
            log(f"{name}: {n} epochs, " + ("identical" if row["identical"] else
                                           f"differs (max rel. diff {row['max_rel_diff']:.2e})"))
    if not rows:
        raise ValueError(f"out: no finished run in {out} with these settings (schedule {schedule!r}, problems "
                         f"{list(problems)}, models {list(models)}, seeds {cfg['seeds']})"
                         + (f"; trained with other settings: {', '.join(other)}" if other else ""))
    return rows


def merge_verify(previous, rows, command, commit, machine):
    """The campaign's ``verify.json`` after a check: ``rows`` replace the earlier rows of the same runs.

    A check of a few runs (one problem, a new seed) must not drop the record of the runs it did not retrain, so
    the file keeps one row per run, the latest check of each, and every row names the command, commit and machine
    that checked it.

    Parameters
    ----------
    previous : dict or None
        The file's content so far (None: no file). A file written before rows named their check has the
        command, commit and machine once at the top; its rows take them over.
    rows : list of dict
        This check's rows (:func:`verify_runs`).
    command, commit, machine : str
        This check's.

    Returns
    -------
    dict
        ``rows``: earlier rows of other runs in their order, then this check's (replacing earlier rows of the same
        runs in place); ``last_check``: this check's command, commit and machine.
    """
    check = dict(command=command, commit=commit, machine=machine)
    previous = previous or {}
    legacy = {k: previous[k] for k in ("command", "commit", "machine") if k in previous}
    merged = {r["name"]: dict(legacy, **r) for r in previous.get("rows", [])}
    for r in rows:
        merged[r["name"]] = dict(r, **check)
    return dict(last_check=check, rows=list(merged.values()))


def verify_text(rows):
    """The rows of :func:`verify_runs` as a table with a one-line count."""
    lines = [f"{'run':36s} {'epochs':>6s} {'identical':>9s} {'max rel. diff':>13s}  recorded at"]
    lines += [f"{r['name']:36s} {r['epochs']:6d} {str(r['identical']):>9s} {r['max_rel_diff']:13.2e}  "
              f"{r['recorded_commit']}" for r in rows]
    lines.append(f"{sum(r['identical'] for r in rows)} of {len(rows)} runs identical")
    return "\n".join(lines)


def status_text(rows, jobs=1):
    """The rows of :func:`campaign_status` as a table with a one-line total."""
    lines = [f"{'run':36s} {'state':12s} {'epoch':>5s} {'rel. L2':>9s} {'h left':>7s}"]
    for r in rows:
        err = "" if r["rel_l2"] is None else f"{r['rel_l2']:.3g}"
        left = "?" if r["seconds_left"] is None else f"{r['seconds_left'] / 3600:.1f}"
        epoch = "" if r["epoch"] is None else str(r["epoch"])
        lines.append(f"{r['name']:36s} {r['state']:12s} {epoch:>5s} {err:>9s} {left:>7s}")
    count = {s: sum(r["state"] == s for r in rows)
             for s in ("finished", "training", "interrupted", "pending", "not defined")}
    known = [r["seconds_left"] for r in rows if r["seconds_left"] is not None]
    unknown = sum(r["seconds_left"] is None for r in rows)
    hours = sum(known) / 3600
    lines.append(", ".join(f"{n} {s}" for s, n in count.items())
                 + f"; about {hours:.1f} core-hours of training left ({hours / max(1, jobs):.1f} h with {jobs} "
                 f"job(s))" + (f", plus {unknown} run(s) of problems with no finished run to estimate from" if unknown
                               else ""))
    return "\n".join(lines)


def train_one(job):
    """Train one (problem, model, seed) and write ``runs/<name>.json``; the unit of work of ``reproduce_boon.run``.

    ``job`` holds ``prob``, ``model``, ``seed``, ``cfg``, ``schedule``, ``runs_dir``, ``cache_dir``, ``device``,
    ``resume``, ``verbose`` and ``commit`` (of the calling process's code; plain values, so that a worker process
    can receive it). Returns the run's name,
    or ``None`` if another process holds it.
    """
    prob, m, seed, cfg, schedule = job["prob"], job["model"], job["seed"], job["cfg"], job["schedule"]
    runs_dir, device = Path(job["runs_dir"]), job["device"]
    name = _run_name(prob, m, seed)
    log = (lambda msg: print(msg, flush=True)) if job["verbose"] else None
    claim = claim_run(runs_dir, name)
    if claim is None:
        if log:
            log(f"{name}: being trained by another process (runs/{name}.claim), skipped")
        return None
    try:
        key = run_key(cfg, prob, m, schedule)
        path = runs_dir / f"{name}.json"
        if job["resume"] and finished_run(path, cfg, prob, m, schedule) is not None:
            if log:  # another process finished it after this call listed it
                log(f"{name}: finished by another process, kept")
            return name
        problem, _ = make_problem(prob, cfg, job["cache_dir"])
        ok, why = defined(m, prob)
        # the thread count too: with another one, the same seeds give other rounding (see verify_runs)
        record = dict(problem=prob, model=m, seed=seed, key=key, device=str(device), threads=torch.get_num_threads())
        if not ok:
            path.write_text(json.dumps(dict(record, not_defined=why)))
            return name
        if log:
            log(f"{name}: training ({schedule}, up to {cfg['max_epochs']} epochs)")
        model = build_model(m, problem, architecture(cfg, prob), seed).to(device)
        ckpt = runs_dir / f"{name}.ckpt.pt"
        if not job["resume"] and ckpt.exists():
            ckpt.unlink()
        hist = train(model, problem, prob, cfg, seed, schedule, ckpt_path=ckpt, log=log,
                     keys=resumable_keys(cfg, prob, m, schedule))
        n_train, n_val, n_test = _sizes(cfg, prob)
        test_idx = list(range(n_train + n_val, n_train + n_val + n_test))
        metrics = evaluate(model, problem, test_idx)
        record.update(hist, **metrics, commit=job.get("commit") or _git_commit(), machine=machine_description())
        _write_json(path, record)
        ckpt.unlink(missing_ok=True)
        Path(str(ckpt) + ".tmp").unlink(missing_ok=True)  # left by a session stopped while writing a checkpoint
        if log:
            log(f"{name}: rel. L2 {metrics['rel_l2']:.4f}, {hist['epochs']} epochs, converged "
                f"{hist['converged']}, {hist['train_seconds']:.0f} s")
        return name
    finally:
        claim.unlink(missing_ok=True)


def _worker_init(threads):
    torch.set_num_threads(threads)


def _train_in_parallel(jobs, n_jobs, threads_per_job, worker=None):
    """Train ``jobs`` in ``n_jobs`` worker processes of ``threads_per_job`` torch threads each.

    ``worker``: the function each job is given to (default :func:`train_one`); a module-level function, so that a
    spawned process can import it by name.
    """
    worker = train_one if worker is None else worker
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A worker imports this module (train_one's) by name, which resolves only with the repository on the path;
    # spawned workers copy the path from this process.
    root = str(Path(__file__).resolve().parents[2])
    if root not in sys.path:
        sys.path.append(root)
    # "spawn": a forked child would inherit torch's thread pools (unsafe after they have started).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads_per_job,)) as pool:
        for future in [pool.submit(worker, job) for job in jobs]:
            future.result()  # re-raises a worker's exception
