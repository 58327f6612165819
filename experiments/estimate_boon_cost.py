"""Measured wall-time estimate of the full BOON reproduction (``python -m experiments.reproduce_boon``, full mode).

For every problem and model it times a few optimizer steps at the full settings (batch, grid, architecture)
and the per-epoch evaluation of the validation and test sets, with 1 and with 2 torch threads, and
extrapolates one run (``max_epochs`` epochs of ``n_train / batch`` steps plus the evaluations), the whole
(problem, model) row over the seeds, and the data generation (timed on a few samples, linear in their number).
The measured inputs are real generated samples at the full grid size.

Usage::

    python -m experiments.estimate_boon_cost --threads 1 --out outputs/boon_cost    # about 3 min on 2 CPU cores
    python -m experiments.estimate_boon_cost --problems stokes --models fno,boon --threads 1,2 --steps 2

With the other core busy, 2 threads are 10-25x slower per step than 1 (measured): time 2 threads on a subset.

Writes ``cost.md`` and ``cost.json`` to ``--out``. The timings are as noisy as the machine is busy: the
table records the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from experiments import reproduce_boon as repro


def _time_steps(model, problem, idx_batches, loss_fn):
    """Seconds per optimizer step: one warm-up step, then the mean over the remaining batches."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    times = []
    for idx in idx_batches:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(repro._call(model, problem.x[idx], repro._batch_values(problem, idx)), problem.y[idx])
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    return float(np.mean(times[1:]))


def _time_eval(model, problem, n_eval):
    """Seconds to evaluate ``n_eval`` samples per epoch (timed on up to 50, linear in the count)."""
    k = min(50, problem.n_samples)
    idx = list(range(k))
    repro.predict(model, problem, idx[:2])  # warm-up
    t0 = time.perf_counter()
    repro.predict(model, problem, idx)
    return (time.perf_counter() - t0) * n_eval / k


def estimate(problems, models, threads=(1, 2), steps=3, out=None, cache_dir=None):
    """Time every (problem, model) at the full settings and extrapolate the full run.

    Parameters
    ----------
    problems, models : sequence of str
        Subsets of ``reproduce_boon.PROBLEMS`` / ``MODELS``.
    threads : sequence of int
        Torch thread counts to time.
    steps : int
        Timed optimizer steps per measurement (after one warm-up step).
    out : str or Path, optional
        Folder for ``cost.md`` and ``cost.json``.
    cache_dir : str or Path, optional
        Where the few measured samples are cached.

    Returns
    -------
    dict
        ``{"rows": [...], "data": {...}, "totals": {...}, "load": ...}``.

    Raises
    ------
    ValueError
        Unknown problem or model, or ``steps < 1``.
    """
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    for p in problems:
        if p not in repro.PROBLEMS:
            raise ValueError(f"problems: expected names from {repro.PROBLEMS}, got {p!r}")
    for m in models:
        if m not in repro.MODELS:
            raise ValueError(f"models: expected names from {repro.MODELS}, got {m!r}")
    from neuralop.losses import LpLoss

    full = repro.CONFIGS["full"]
    batch = full["batch_size"]
    n_measure = batch * (steps + 1)
    rows, data = [], {}
    load_before = os.getloadavg()[0]
    for prob in problems:
        n_train, n_val, n_test = repro._sizes(full, prob)
        # A few real samples at the full grid size: x, y and the boundary values have the full shapes.
        small = dict(full, n_train=n_measure, n_val=0, n_test=0, st_train=n_measure, st_val=0, st_test=0)
        t0 = time.perf_counter()
        problem, _ = repro.make_problem(prob, small, cache_dir)
        gen_s = time.perf_counter() - t0
        data[prob] = dict(samples_timed=n_measure, seconds=gen_s,
                          seconds_full=gen_s * (n_train + n_val + n_test) / n_measure)
        arch = repro.architecture(full, prob)
        loss_fn = LpLoss(d=problem.x.ndim - 2, p=2)
        batches = [torch.arange(i * batch, (i + 1) * batch) for i in range(steps + 1)]
        for m in models:
            ok, why = repro.defined(m, prob)
            if not ok:
                rows.append(dict(problem=prob, model=m, not_defined=why))
                continue
            row = dict(problem=prob, model=m, steps_per_epoch=int(np.ceil(n_train / batch)))
            for nt in threads:
                torch.set_num_threads(nt)
                model = repro.build_model(m, problem, arch, 0)
                step = _time_steps(model, problem, batches, loss_fn)
                ev = _time_eval(model, problem, n_val + n_test)
                epoch = row["steps_per_epoch"] * step + ev
                row[f"t{nt}"] = dict(step_s=step, eval_s=ev, epoch_s=epoch,
                                     run_h=epoch * full["max_epochs"] / 3600)
            best = min(threads, key=lambda nt: row[f"t{nt}"]["run_h"])
            row["best_threads"] = best
            row["run_h"] = row[f"t{best}"]["run_h"]
            row["seeds_h"] = row["run_h"] * len(full["seeds"])
            rows.append(row)
            print(f"{prob} {m}: " + ", ".join(f"{nt} thr {row[f't{nt}']['step_s']:.3f} s/step" for nt in threads)
                  + f" -> {row['run_h']:.2f} h per seed", flush=True)
            if out is not None:  # partial results survive an interruption
                Path(out).mkdir(parents=True, exist_ok=True)
                (Path(out) / "cost_partial.json").write_text(json.dumps(dict(rows=rows, data=data), indent=1))
    totals = {}
    for prob in problems:
        totals[prob] = sum(r["seeds_h"] for r in rows if r["problem"] == prob and "seeds_h" in r)
    result = dict(rows=rows, data=data, totals=totals, total_h=sum(totals.values()),
                  load_before=load_before, load_after=os.getloadavg()[0], threads=list(threads), steps=steps,
                  config=dict(max_epochs=full["max_epochs"], seeds=full["seeds"], batch=batch))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cost.json").write_text(json.dumps(result, indent=1))
        (out / "cost.md").write_text(markdown(result) + "\n")
    return result


def markdown(result):
    """The estimate as a markdown table."""
    threads = result["threads"]
    head = ("| problem | model | steps/epoch | " + " | ".join(f"s/step, {nt} thr" for nt in threads)
            + " | eval s/epoch | h per seed (best threads) | h for all seeds |")
    lines = [head, "|" + "---|" * (6 + len(threads))]
    for r in result["rows"]:
        if "not_defined" in r:
            lines.append(f"| {r['problem']} | {r['model']} | n/a (Dirichlet only) |" + " |" * (3 + len(threads)))
            continue
        best = r[f"t{r['best_threads']}"]
        lines.append(
            f"| {r['problem']} | {r['model']} | {r['steps_per_epoch']} | "
            + " | ".join(f"{r[f't{nt}']['step_s']:.3f}" for nt in threads)
            + f" | {best['eval_s']:.1f} | {r['run_h']:.2f} ({r['best_threads']}) | {r['seeds_h']:.1f} |"
        )
    lines.append("")
    lines.append("| problem | all models and seeds, h | data generation (extrapolated), s |")
    lines.append("|---|---|---|")
    for prob, h in result["totals"].items():
        lines.append(f"| {prob} | {h:.1f} | {result['data'][prob]['seconds_full']:.0f} |")
    lines.append(f"| **total** | **{result['total_h']:.1f}** | |")
    lines.append("")
    lines.append(f"Load average (1 min) before / after: {result['load_before']:.2f} / {result['load_after']:.2f}; "
                 f"{result['steps']} timed steps per measurement after one warm-up step.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", default=",".join(repro.PROBLEMS))
    parser.add_argument("--models", default=",".join(repro.MODELS))
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to time")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per measurement")
    parser.add_argument("--out", default="outputs/boon_cost")
    args = parser.parse_args(argv)
    result = estimate([p for p in args.problems.split(",") if p], [m for m in args.models.split(",") if m],
                      threads=tuple(int(t) for t in args.threads.split(",")), steps=args.steps, out=args.out,
                      cache_dir=Path(args.out) / "data")
    print(markdown(result))


if __name__ == "__main__":
    main()
