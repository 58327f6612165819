"""Running the hard-regime campaign (``reproduce_boon.py --campaign hard``): runs, status, plan, report.

The unit of work, the claims, the worker processes, the training loop and the rule are the first campaign's
(``campaign``, ``training``, ``rule``); this module gives them the hard family's cells (``hard``), measures each run
by region and over time (``regions``) and writes ``results.md``, ``results.json``, ``runs/*.json`` and the
error-over-time figures.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from boon_ext import load_checkpoint_file
from experiments.boon_campaign import hard
from experiments.boon_campaign.campaign import _train_in_parallel, claim_held, claim_run
from experiments.boon_campaign.metrics import predict
from experiments.boon_campaign.regions import REGIONS, boundary_residual, error_over_time, region_summary
from experiments.boon_campaign.report import _plt, _save, _stats
from experiments.boon_campaign.rule import choose_default, markdown as decision_markdown
from experiments.docs_blocks import check_docs_blocks, markers, write_docs_blocks
from experiments.boon_campaign.training import _git_commit, _write_json, train
from experiments.provenance import machine_description

# The rule over the hard cells: every cell is required; the wall-input FNO gets verdicts but is no BOON variant.
RULE_VARIANTS = {"boon_output": "output only", "boon": "T2", "boon_hidden": "T2 + values in every layer",
                 "fno_enforced": None, "fno_walls": None}
RULE_CANDIDATES = ("boon_output", "boon")


# The generated block of a documentation page (docs/boon_results.md) that ``--campaign hard --docs PAGE`` rewrites.
DOCS_BLOCKS = dict(report=markers("reproduce_boon --campaign hard"))


def run_name(cell, model, seed):
    return f"{cell.replace('/', '_')}_{model}_s{seed}"


def training_order(cfg, models):
    """(seed, model, cell): seed-major, so that a campaign stopped part-way has the same seeds everywhere."""
    return [(s, m, c) for s in cfg["seeds"] for m in models if m in hard.TRAINED_MODELS for c in cfg["cells"]]


def evaluate(model, problem, test_idx):
    """Mean relative L2, its exact split by region, the error per frame and the boundary residual."""
    y = problem.y[test_idx]
    bv = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    pred = predict(model, problem, test_idx, torch.float32)
    out = region_summary(pred, y, hard.wall_axes(problem))
    out["boundary_error"] = boundary_residual(pred, problem.boundary, bv, problem.domain)
    if problem.times is not None and y.ndim >= 4:
        e = error_over_time(pred, y)
        out["rel_l2_over_time"] = e.mean(0).tolist()
        out["rel_l2_over_time_median"] = e.median(0).values.tolist()
    return out


def _data(settings, cache_dir, memo={}):  # noqa: B006 (one cache per process: the workers read the data once)
    key = json.dumps(settings, sort_keys=True, default=str) + str(cache_dir)
    if key not in memo:
        memo.clear()
        memo[key] = hard.generate(settings, cache_dir)
    return memo[key]


def train_one(job):
    """Train one (cell, model, seed) and write ``runs/<name>.json`` (the FNO's with ``fno_enforced`` inside)."""
    cell, m, seed, cfg = job["cell"], job["model"], job["seed"], job["cfg"]
    runs_dir, device = Path(job["runs_dir"]), job["device"]
    name = run_name(cell, m, seed)
    log = (lambda msg: print(msg, flush=True)) if job["verbose"] else None
    claim = claim_run(runs_dir, name)
    if claim is None:
        if log:
            log(f"{name}: being trained by another process, skipped")
        return None
    try:
        settings = hard.cell_settings(cfg, cell)
        key = hard.run_key(settings, m)
        path = runs_dir / f"{name}.json"
        if job["resume"] and path.exists() and json.loads(path.read_text()).get("key") == key:
            return name
        record = dict(cell=cell, problem=settings["problem"], split=settings["split"], model=m, seed=seed, key=key,
                      device=str(device), threads=torch.get_num_threads())
        ok, why = hard.defined(m, cell)
        if not ok:
            _write_json(path, dict(record, not_defined=why))
            return name
        problem = _data(settings, job["cache_dir"])
        idx = hard.split_indices(problem, settings)
        model = hard.build_model(m, problem, settings["arch"], seed).to(device)
        ckpt = runs_dir / f"{name}.ckpt.pt"
        if not job["resume"] and ckpt.exists():
            ckpt.unlink()
        if log:
            log(f"{name}: training ({settings['max_epochs']} epochs)")
        hist = train(model, problem, cell, settings, seed, "paper", ckpt_path=ckpt, log=log, keys=(key,),
                     indices=idx)
        model = model.cpu()
        metrics = evaluate(model, problem, idx[2])
        best = int(np.nanargmin(hist["val_rel_l2"])) if hist["val_rel_l2"] else None
        record.update(hist, **metrics, reported_at="end of the learning-rate schedule", best_val_epoch=best,
                      test_at_best_val=None if best is None else hist["test_rel_l2"][best],
                      commit=job.get("commit") or _git_commit(), machine=machine_description())
        if m == "fno":  # the trained FNO wrapped with output enforcement: free, no training
            record["enforced"] = evaluate(hard.enforced(model, problem), problem, idx[2])
        _write_json(path, record)
        ckpt.unlink(missing_ok=True)
        if log:
            log(f"{name}: rel. L2 {metrics['rel_l2']:.4g}, {hist['train_seconds']:.0f} s")
        return name
    finally:
        claim.unlink(missing_ok=True)


def finished_runs(out, cfg, models=hard.MODELS):
    """Every finished run in ``out/runs`` with the current settings; ``fno_enforced`` records from FNO runs."""
    runs = []
    for path in sorted(Path(out, "runs").glob("*.json")):
        r = json.loads(path.read_text())
        cell = r.get("cell")
        if cell not in cfg["cells"] or r.get("model") not in models or r.get("seed") not in cfg["seeds"]:
            continue
        if r.get("key") != hard.run_key(hard.cell_settings(cfg, cell), r["model"]):
            continue
        runs.append(r)
        if r["model"] == "fno" and "enforced" in r and "fno_enforced" in models:
            runs.append(dict(r["enforced"], cell=cell, model="fno_enforced", seed=r["seed"],
                             train_seconds=0.0, epochs=r["epochs"]))
    return runs


METRICS = ("rel_l2", "rms_rel_l2", "rms_rel_l2_wall", "rms_rel_l2_band", "rms_rel_l2_interior", "boundary_error")


def summarize(runs, cells, models):
    """``{cell: {model: entry}}``: median and min..max over seeds, FNO / model factors per seed (as the first
    campaign's ``report.summarize``, which the rule reads)."""
    summary = {}
    for cell in cells:
        summary[cell] = {}
        fno = {r["seed"]: r for r in runs if r["cell"] == cell and r["model"] == "fno" and "not_defined" not in r}
        for m in models:
            rs = sorted((r for r in runs if r["cell"] == cell and r["model"] == m), key=lambda r: r["seed"])
            if not rs:
                continue
            if any("not_defined" in r for r in rs):
                why = rs[0]["not_defined"]
                # A cell waiting for code (T2 on the cavity) is pending, not "not defined": the rule must wait
                # for it rather than decide without it.
                summary[cell][m] = {"pending" if why.startswith("pending") else "not_defined": why, "n_seeds": 0}
                continue
            e = {k: _stats([r[k] for r in rs]) for k in METRICS}
            # What exact wall values written into this run's own output would leave of its RMS error (its band and
            # interior parts: on Dirichlet faces the output step changes the wall nodes only), and the gain, per
            # seed; then over seeds.
            off_wall = [math.hypot(r["rms_rel_l2_band"], r["rms_rel_l2_interior"]) for r in rs]
            e["rms_off_wall"] = _stats(off_wall)
            e["exact_walls_gain"] = _stats([r["rms_rel_l2"] / max(o, 1e-300) for r, o in zip(rs, off_wall)])
            for region in REGIONS:  # each run's share of its squared error in the region, then over seeds
                e[f"share_{region}"] = _stats([(r[f"rms_rel_l2_{region}"] / max(r["rms_rel_l2"], 1e-300)) ** 2
                                               for r in rs])
            # The regions' shares of the nodes (one grid per cell): a share of the error is read against them; an
            # error share above the node share means the error crowds at the walls.
            n_nodes = sum(rs[0][f"nodes_{region}"] for region in REGIONS)
            e["node_fraction"] = {region: rs[0][f"nodes_{region}"] / n_nodes for region in REGIONS}
            e["n_seeds"] = len(rs)
            if "rel_l2_over_time" in rs[0]:
                e["over_time"] = [r["rel_l2_over_time"] for r in rs]
            paired = [(fno[r["seed"]], r) for r in rs if r["seed"] in fno and m != "fno"]
            if paired:  # the rule's metric (mean relative L2), and the RMS that the region split is in
                e["factor"] = dict(_stats([f["rel_l2"] / r["rel_l2"] for f, r in paired]), n=len(paired))
                e["rms_factor"] = dict(_stats([f["rms_rel_l2"] / r["rms_rel_l2"] for f, r in paired]), n=len(paired))
            summary[cell][m] = e
    return summary


def _fmt(s):
    return f"{s['median']:.3g} [{s['min']:.3g}..{s['max']:.3g}]"


def markdown_table(summary, models):
    """Two tables: error and FNO / model per cell and model; the error split by region (medians)."""
    lines = ["| cell | model | seeds | rel. L2 median [min..max] | FNO / model | boundary error (max) |",
             "|---|---|---|---|---|---|"]
    for cell, entries in summary.items():
        for m in models:
            e = entries.get(m)
            if e is None:
                continue
            if "not_defined" in e or "pending" in e:
                lines.append(f"| {cell} | {hard.MODEL_LABELS[m]} | | {e.get('not_defined', e.get('pending'))} | | |")
                continue
            factor = _fmt(e["factor"]) if "factor" in e else ""
            lines.append(f"| {cell} | {hard.MODEL_LABELS[m]} | {e['n_seeds']} | {_fmt(e['rel_l2'])} | {factor} | "
                         f"{e['boundary_error']['max']:.2g} |")
    # What a boundary method can touch: exact wall values written into the FNO's own output remove the wall nodes'
    # share of its squared error and nothing else (Dirichlet), a gain of 1 / sqrt(1 - share) in RMS terms.
    touch = [(cell, e["fno"]) for cell, e in summary.items() if "rms_rel_l2" in e.get("fno", {})]
    if touch:
        lines += ["", "What the walls hold of the FNO's error (medians over its seeds, so the three shares need not add "
                  "up to 100%): the share of its squared error (over the test set) at the wall nodes, in the "
                  "near-wall band and in the interior, each beside the region's share of the grid's nodes (an "
                  "error share above it: the error crowds there); and, on Dirichlet cells, the gain in RMS error "
                  "that exact wall "
                  "values written into the same FNO's output give, 1 / sqrt(1 - wall share) per seed. It is what "
                  "wrapping the trained FNO gives; a model trained with exact walls is another network and may "
                  "land on either side of it:", "",
                  "| cell | FNO seeds | wall nodes | near-wall band | interior | exact walls on the same FNO (RMS) |",
                  "|---|---|---|---|---|---|"]
        for cell, f in touch:
            share = {r: f[f"share_{r}"]["median"] for r in REGIONS}
            if hard.PROBLEMS[cell.partition("/")[0]]["kinds"] == ("dirichlet",):
                gain = _fmt(f["exact_walls_gain"]) + "x"
            else:  # a Neumann wall's enforced slope moves the wall node's value, but not to the truth
                gain = "n/a (Neumann: slope enforced, not the value)"
            nodes = f["node_fraction"]
            lines.append(f"| {cell} | {f['n_seeds']} | "
                         + " | ".join(f"{share[r]:.0%} ({nodes[r]:.0%} of nodes)" for r in ("wall", "band", "interior"))
                         + f" | {gain} |")
    lines += ["", "Error by region (root mean square over the test set, each part over the whole target's norm, so "
              "wall^2 + band^2 + interior^2 = total^2; medians over seeds; band: 5% of the domain next to each "
              "wall). On Dirichlet cells, exact wall values written at the output change the wall nodes only, so "
              "they would leave exactly sqrt(band^2 + interior^2): the last column, with the median over seeds of "
              "its gain over the model's own total:",
              "", "| cell | model | total (RMS) | wall nodes | near-wall band | interior | with exact Dirichlet walls |",
              "|---|---|---|---|---|---|---|"]
    for cell, entries in summary.items():
        dirichlet = hard.PROBLEMS[cell.partition("/")[0]]["kinds"] == ("dirichlet",)
        for m in models:
            e = entries.get(m)
            if e is None or "not_defined" in e or "pending" in e:
                continue
            if not dirichlet:
                exact = "n/a (Neumann)"
            elif e["rms_rel_l2_wall"]["max"] == 0:
                exact = "(exact already)"
            else:
                exact = f"{e['rms_off_wall']['median']:.3g} ({e['exact_walls_gain']['median']:.2f}x)"
            lines.append(f"| {cell} | {hard.MODEL_LABELS[m]} | {e['rms_rel_l2']['median']:.3g} | "
                         + " | ".join(f"{e[f'rms_rel_l2_{r}']['median']:.3g}" for r in ("wall", "band", "interior"))
                         + f" | {exact} |")
    return "\n".join(lines)


def plot_over_time(out, cell, entries, models):
    """The article's "error over time": per model, the median over seeds of the test-mean error per frame, with
    the seeds' min..max shaded."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for m in models:
        e = entries.get(m)
        if not e or "over_time" not in e:
            continue
        a = np.asarray(e["over_time"], dtype=float)
        t = np.arange(1, a.shape[1] + 1)
        (line,) = ax.semilogy(t, np.median(a, 0), label=f"{hard.MODEL_LABELS[m]} (n={a.shape[0]})")
        ax.fill_between(t, a.min(0), a.max(0), alpha=0.2, color=line.get_color())
    ax.set(xlabel="output frame", ylabel="test relative L2 (mean over samples)")
    ax.legend(fontsize=7)
    return _save(plt, fig, f"{cell}: error over time", Path(out) / f"over_time_{cell.replace('/', '_')}.png")


def plot_gains(out, summary, models):
    """The campaign at a glance: per cell and model, the FNO's RMS error over the model's, same seed (median,
    min..max over the seeds, their number beside), on a log axis; on Dirichlet cells a dashed mark at what exact
    wall values written into the FNO's own output give (the median over seeds of 1 / sqrt(1 - its wall share)).
    RMS, not the table's mean relative L2, because the mark is exact in RMS."""
    plt = _plt()
    rows = [(cell, m, e) for cell, es in summary.items() for m in models
            if (e := es.get(m)) and "rms_factor" in e]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.6))
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    ys, labels, last = [], [], None
    y = 0.0
    for cell, m, e in rows:
        if last is not None and cell != last:
            y += 0.6  # a gap between cells
        f = e["rms_factor"]
        ax.errorbar(f["median"], -y, xerr=[[f["median"] - f["min"]], [f["max"] - f["median"]]], fmt="o",
                    color=colors[m], capsize=3, ms=5)
        ax.annotate(f"{f['median']:.2f}x (n={f['n']})", (f["max"], -y), xytext=(6, -3), textcoords="offset points",
                    fontsize=7)
        fno = summary[cell].get("fno", {})
        if (cell != last and hard.PROBLEMS[cell.partition("/")[0]]["kinds"] == ("dirichlet",)
                and "exact_walls_gain" in fno):
            bound = fno["exact_walls_gain"]["median"]
            n_cell = sum(1 for c, _, _ in rows if c == cell)
            ax.vlines(bound, -(y + n_cell - 1) - 0.4, -y + 0.4,
                      colors="0.4", linestyles="dashed", lw=1)
        ys.append(-y)
        labels.append(f"{cell}  {hard.MODEL_LABELS[m]}")
        last = cell
        y += 1.0
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.set_xlim(lo, hi * 1.6)  # room for the labels right of the bars
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo <= t <= hi * 1.6]
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_xlabel("FNO's RMS error / model's (same seed): > 1 is better than the FNO\n"
                  "dashed: the trained FNO with exact walls written into its output (Dirichlet cells)",
                  fontsize=8)
    return _save(plt, fig, "Where BOON pays: gain over the FNO per cell and model", Path(out) / "gains.png")


def plot_curves(out, cell, runs, models):
    """Training curves of a cell: test error against epoch per model, one line per seed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, m in enumerate(m for m in models if m in hard.TRAINED_MODELS):
        for r in sorted((r for r in runs if r["cell"] == cell and r["model"] == m and "test_rel_l2" in r),
                        key=lambda r: r["seed"]):
            ax.semilogy(np.arange(1, len(r["test_rel_l2"]) + 1), r["test_rel_l2"], color=f"C{i}",
                        label=hard.MODEL_LABELS[m] if r["seed"] == min(x["seed"] for x in runs) else None)
    ax.set(xlabel="epoch", ylabel="test relative L2")
    ax.legend(fontsize=7)
    return _save(plt, fig, f"{cell}: training curves", Path(out) / f"curves_{cell.replace('/', '_')}.png")


def verify(out, cfg, models, epochs, cache_dir=None, device="cpu", log=None):
    """Retrain the first ``epochs`` epochs of every finished run in ``out`` and compare its curves bit for bit
    (as ``campaign.verify_runs`` does for the first campaign); rows for ``campaign.verify_text``."""
    if int(epochs) < 1:
        raise ValueError(f"epochs (--verify) must be a positive number of epochs, got {epochs!r}")
    cache_dir = str(Path(cache_dir) if cache_dir is not None else Path(out) / "data")
    rows = []
    for r in finished_runs(out, cfg, [m for m in models if m in hard.TRAINED_MODELS]):
        if "not_defined" in r or not r.get("epochs"):
            continue
        settings = hard.cell_settings(cfg, r["cell"])
        problem = _data(settings, cache_dir)
        n = min(int(epochs), r["epochs"])
        model = hard.build_model(r["model"], problem, settings["arch"], r["seed"]).to(device)
        threads = torch.get_num_threads()
        torch.set_num_threads(r.get("threads", threads))
        t0 = time.perf_counter()
        try:
            hist = train(model, problem, r["cell"], settings, r["seed"], "paper", stop_after=n,
                         indices=hard.split_indices(problem, settings))
        finally:
            torch.set_num_threads(threads)
        curves = ("train_loss", "val_rel_l2", "test_rel_l2")
        new = np.array([hist[k][:n] for k in curves], dtype=float)
        old = np.array([r[k][:n] for k in curves], dtype=float)
        diff = np.abs(new - old) / np.maximum(np.abs(old), 1e-30)
        rows.append(dict(name=run_name(r["cell"], r["model"], r["seed"]), epochs=n,
                         identical=bool(np.array_equal(new, old, equal_nan=True)),
                         max_rel_diff=float(np.nan_to_num(diff, nan=0.0).max(initial=0.0)),
                         recorded_commit=r.get("commit"), threads=r.get("threads"),
                         seconds=time.perf_counter() - t0))
        if log:
            log(f"{rows[-1]['name']}: {n} epochs, identical {rows[-1]['identical']}")
    if not rows:
        raise ValueError(f"out: no finished run in {out} with the current settings to verify")
    return rows


# ----------------------------------------------------------------------------------------------------- the plan
COSTS = Path(__file__).resolve().parents[2] / "results" / "datasets" / "costs.json"


def plan(cfg, models=hard.MODELS, costs_path=COSTS):
    """Planned training hours per cell from the measured seconds per epoch (``costs.json``, one thread).

    The measured sizes are docs/datasets.md's; a cell whose sizes differ is scaled by its training samples and by
    its grid's nodes (epoch cost is about linear in both). T2 models count ``COST_FACTOR`` times the FNO;
    ``fno_enforced`` costs nothing.
    """
    measured = json.loads(Path(costs_path).read_text())["problems"]
    rows = []
    for cell in cfg["cells"]:
        st = hard.cell_settings(cfg, cell)
        m_ = measured[hard.PROBLEMS[st["problem"]]["cost_key"]]
        per_epoch = m_["fno_epoch_s"] * st["sizes"][0] / m_["n_train"] * _grid_ratio(st, m_["shape"])
        ms = [m for m in models if m in hard.TRAINED_MODELS]
        factor = sum(hard.COST_FACTOR[m] for m in ms if hard.defined(m, cell)[0])
        pending = sum(hard.COST_FACTOR[m] for m in ms if hard.defined(m, cell)[1].startswith("pending"))
        seconds = per_epoch * st["max_epochs"] * factor * len(cfg["seeds"])
        rows.append(dict(cell=cell, fno_s_per_epoch=per_epoch, epochs=st["max_epochs"], fno_runs=factor,
                         seeds=len(cfg["seeds"]), hours=seconds / 3600,
                         pending_hours=per_epoch * st["max_epochs"] * pending * len(cfg["seeds"]) / 3600,
                         generation_s=m_["generate_full_s_extrapolated"]))
    return rows


def _grid_ratio(settings, measured_shape):
    """The cell's nodes per sample over those of the measured shape ``(C, N[, N], [T])``: spatial nodes, and frames
    where the cell sets ``n_times`` (the presets' frame count is the measured one)."""
    spacetime = hard.PROBLEMS[settings["problem"]]["spacetime"]
    spatial = len(measured_shape) - 1 - int(spacetime)
    frames = settings["kwargs"].get("n_times", measured_shape[-1]) / measured_shape[-1] if spacetime else 1.0
    return (settings["kwargs"]["n_points"] / measured_shape[1]) ** spatial * frames


def planned_s_per_epoch(rows, cell, model):
    """Seconds per epoch :func:`plan`'s ``rows`` expect of ``model`` on ``cell``: the one place a plan row becomes a
    run's cost (read by :func:`planned_hours` and :func:`status`). ``None`` for a cell outside the plan; 0 for the
    wrapped FNO, which is evaluated inside the FNO's run."""
    row = next((r for r in rows if r["cell"] == cell), None)
    if row is None:
        return None
    return row["fno_s_per_epoch"] * hard.COST_FACTOR[model] if model in hard.TRAINED_MODELS else 0.0


def planned_hours(runs, rows):
    """The hours :func:`plan`'s ``rows`` expected for these finished ``runs``: a plan is worth quoting only beside
    what it became. Runs of cells outside the plan, the wrapped FNO (evaluated inside the FNO's run) and the records
    of a model not defined on a cell (nothing trained; the plan has no hours for them) count 0."""
    epochs = {r["cell"]: r["epochs"] for r in rows}
    return sum((planned_s_per_epoch(rows, r["cell"], r["model"]) or 0.0) * epochs.get(r["cell"], 0)
               for r in runs if "not_defined" not in r) / 3600


def plan_text(rows, budget=hard.BUDGET_HOURS):
    lines = [f"{'cell':24s} {'FNO s/epoch':>11s} {'epochs':>6s} {'FNO-runs':>8s} {'seeds':>5s} {'hours':>6s} "
             f"{'pending h':>9s}"]
    for r in rows:
        lines.append(f"{r['cell']:24s} {r['fno_s_per_epoch']:11.1f} {r['epochs']:6d} {r['fno_runs']:8.1f} "
                     f"{r['seeds']:5d} {r['hours']:6.1f} {r['pending_hours']:9.1f}")
    total, pend = sum(r["hours"] for r in rows), sum(r["pending_hours"] for r in rows)
    generation = sum(r["generation_s"] for r in rows) / 60
    waiting = f" (+ {pend:.1f} h for cells pending code)" if pend else ""
    lines.append(f"planned: {total:.1f} h of single-thread training{waiting} against the {budget:.0f} h budget; "
                 f"generation {generation:.0f} min")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- status
def status(out, cfg, models=hard.MODELS, runs=None):
    """Every selected run: finished, training (claimed), interrupted (a checkpoint nobody holds), pending or not
    defined, with the hours left: from the seconds per epoch of the same cell and model's finished runs, else from
    the plan's (measured by ``experiments.datasets.costs``). Reads files only; ``runs`` (:func:`finished_runs` of
    ``out``, for ``cfg`` or a configuration that contains it) spares reading the finished runs a second time: they
    decide which runs are finished (their key already checked), and runs outside ``cfg`` only lend their seconds
    per epoch to the same cell and model."""
    runs_dir = Path(out) / "runs"
    rows_plan = plan(cfg, models)
    runs = finished_runs(out, cfg, models) if runs is None else runs
    done = {(r["cell"], r["model"], r["seed"]) for r in runs}
    measured = {}  # (cell, model) -> seconds per epoch of its finished runs, preferred to the plan's
    for r in runs:
        if r.get("epochs") and r.get("train_seconds") and r["model"] in hard.TRAINED_MODELS:
            measured.setdefault((r["cell"], r["model"]), []).append(r["train_seconds"] / r["epochs"])
    rows = []
    for seed, m, cell in training_order(cfg, models):
        name = run_name(cell, m, seed)
        st = hard.cell_settings(cfg, cell)
        ok, why = hard.defined(m, cell)
        ids = dict(name=name, cell=cell, model=m, seed=seed)
        if not ok:
            rows.append(dict(ids, state=why.split(":")[0], left=0.0))
            continue
        if (cell, m, seed) in done:
            rows.append(dict(ids, state="finished", left=0.0))
            continue
        epoch, ckpt = 0, runs_dir / f"{name}.ckpt.pt"
        if ckpt.exists():
            try:
                ck = load_checkpoint_file(ckpt, map_location="cpu")  # the package's reader: no calls, no allocation
            except Exception:  # noqa: BLE001 (being replaced at this moment, or damaged: counted from the start)
                ck = {}
            if isinstance(ck, dict) and ck.get("key") == hard.run_key(st, m):
                epoch = int(ck.get("epoch", 0))
        state = "training" if claim_held(runs_dir / f"{name}.claim") else ("interrupted" if epoch else "pending")
        own = measured.get((cell, m))
        per_epoch = float(np.median(own)) if own else planned_s_per_epoch(rows_plan, cell, m)
        left = per_epoch * (st["max_epochs"] - epoch)
        rows.append(dict(ids, state=state, epoch=epoch, left=left))
    return rows


def progress_markdown(rows, labels=hard.MODEL_LABELS):
    """What the report does not cover yet, from :func:`status`'s rows: runs finished of those planned, the training
    hours left, and per cell the models short of the planned seeds (so a reader sees which verdicts are pending)."""
    defined = [r for r in rows if r["state"] not in ("n/a", "not defined")]
    done = [r for r in defined if r["state"] == "finished"]
    seeds = {}
    for r in defined:
        seeds.setdefault(r["cell"], {}).setdefault(r["model"], [0, 0])
        seeds[r["cell"]][r["model"]][0] += r["state"] == "finished"
        seeds[r["cell"]][r["model"]][1] += 1
    short = []
    for cell, per_model in seeds.items():
        missing = [f"{labels.get(m, m)} {n}/{total}" for m, (n, total) in per_model.items() if n < total]
        if missing:
            short.append(f"- {cell}: " + ", ".join(missing))
    hours = sum(r["left"] for r in rows) / 3600
    lines = [f"Progress: {len(done)} of the {len(defined)} planned runs finished; about {hours:.1f} single-thread "
             "hours of training left (estimated from the measured seconds per epoch; `--status` lists every run)."]
    if short:
        lines += ["", "Seeds finished of those planned, where short (verdicts on these wait for them):", ""] + short
    return "\n".join(lines)


def status_text(rows, jobs=1):
    lines = [f"{'run':44s} {'state':26s} {'h left':>6s}"]
    lines += [f"{r['name']:44s} {r['state']:26s} {r['left'] / 3600:6.2f}" for r in rows]
    states = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    hours = sum(r["left"] for r in rows) / 3600
    lines.append(", ".join(f"{n} {s}" for s, n in states.items())
                 + f"; about {hours:.1f} single-thread hours left ({hours / max(1, jobs):.1f} h with {jobs} lane(s))")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- the run
def report_config(out, quick=False):
    """The configuration a report covers: the mode's cells and seeds, plus every other valid cell and seed that a
    finished run in ``out/runs`` was trained with (a call may train ``--cells stokes_ref/ordered`` or
    ``--seeds 3``; later reports keep them). Runs with other settings are still left out by their key."""
    cfg = hard.make_config(quick)
    cells, seeds = list(cfg["cells"]), set(cfg["seeds"])
    for path in sorted(Path(out, "runs").glob("*.json")):
        try:
            r = json.loads(path.read_text())
            cell = hard.check_cell(r.get("cell"))
        except (ValueError, OSError):  # not a run of this campaign (or being written): nothing to report
            continue
        if cell not in cells:
            cells.append(cell)
        if isinstance(r.get("seed"), int) and not isinstance(r.get("seed"), bool):
            seeds.add(r["seed"])
    return hard.make_config(quick, sorted(seeds), cells)


def run(out, quick=False, cells=None, models=hard.MODELS, seeds=None, resume=False, device="cpu", jobs=1,
        threads_per_job=1, cache_dir=None, plots=True, command=None, verbose=True, report_only=False, costs=None,
        docs=None):
    """Train every selected (cell, model, seed) not finished, then write the report to ``out``.

    The report covers every finished run in ``out``; ``docs`` (Markdown pages) also get it in their generated
    block (``DOCS_BLOCKS``), with links relative to the page. A page without the block fails before any training.

    Returns the dict written to ``results.json``.
    """
    from experiments.boon_campaign.rule import load_costs

    training_costs = load_costs(costs)
    for page in docs or ():
        check_docs_blocks(page, DOCS_BLOCKS, "--docs")
    models = hard.check_models(models)
    if int(jobs) < 1 or int(threads_per_job) < 1:
        raise ValueError(f"jobs and threads_per_job must be positive ints, got {jobs!r} and {threads_per_job!r}")
    cfg = hard.make_config(quick, seeds, cells)
    out = Path(out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = str(Path(cache_dir) if cache_dir is not None else out / "data")
    t0 = time.perf_counter()
    commit = _git_commit()
    jobs_list = []
    for seed, m, cell in training_order(cfg, models):
        path = runs_dir / f"{run_name(cell, m, seed)}.json"
        if resume and path.exists():
            key = hard.run_key(hard.cell_settings(cfg, cell), m)
            if json.loads(path.read_text()).get("key") == key:
                continue
        if not report_only:
            jobs_list.append(dict(cell=cell, model=m, seed=seed, cfg=cfg, runs_dir=str(runs_dir),
                                  cache_dir=cache_dir, device=str(device), resume=resume, verbose=verbose,
                                  commit=commit))
    # The data are generated here, once per cell, so parallel workers only read the cache.
    for settings in {json.dumps(hard.cell_settings(cfg, j["cell"]), sort_keys=True): None for j in jobs_list}:
        hard.generate(json.loads(settings), cache_dir)
    if int(jobs) == 1 or len(jobs_list) <= 1:
        for j in jobs_list:
            train_one(j)
    else:
        _train_in_parallel(jobs_list, int(jobs), int(threads_per_job), worker=train_one)
    # The report covers every finished run in ``out``, not only this call's selection: lanes that train
    # different cells, models or seeds into one folder must not overwrite each other's results with a subset.
    # The rule requires the mode's cells, whatever this call selected.
    report_cfg = report_config(out, quick)
    runs = finished_runs(out, report_cfg, hard.MODELS)
    cells_done = [c for c in report_cfg["cells"] if any(r["cell"] == c for r in runs)]
    models = hard.MODELS
    summary = summarize(runs, cells_done, models)
    decision = choose_default(summary, training_costs, required=hard.make_config(quick)["cells"],
                              variants=RULE_VARIANTS,
                              candidates=RULE_CANDIDATES)
    pngs = {}
    if plots:
        gains = plot_gains(out, summary, models)
        if gains:
            pngs["gain over the FNO per cell and model"] = gains
        for cell in cells_done:
            pngs[f"{cell} curves"] = plot_curves(out, cell, runs, models)
            if any("over_time" in e for e in summary[cell].values()):
                pngs[cell] = plot_over_time(out, cell, summary[cell], models)
    rows = plan(hard.make_config(False), models)
    progress = progress_markdown(status(out, hard.make_config(quick), models, runs=runs))
    spent = sum(r.get("train_seconds", 0.0) for r in runs) / 3600
    planned_done = planned_hours(runs, rows)
    slim = [{k: v for k, v in r.items() if k not in ("enforced",)} for r in runs]
    regenerate = ("python -m experiments.reproduce_boon --campaign hard"
                  f"{' --quick' if quick else ''} --report-only --out {out}"
                  + (f" --costs {costs}" if costs is not None else ""))
    result = dict(campaign="hard", mode="quick" if quick else "full", command=command, regenerate=regenerate,
                  commit=_git_commit(),
                  machine=machine_description(), config=report_cfg, seconds_this_call=time.perf_counter() - t0,
                  hours_trained=spent, hours_planned_for_these_runs=None if quick else planned_done, plan=rows,
                  runs=slim,
                  summary={c: {m: {k: v for k, v in e.items() if k != "over_time"} for m, e in es.items()}
                           for c, es in summary.items()},
                  decision=decision, plots=pngs)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))

    def report(link, top, sub):  # Markdown with headings ``top`` / ``sub``; PNGs linked through ``link(name)``
        md = [f"{top} BOON hard-regime campaign ({result['mode']} mode)", "",
              f"Every finished run in `{out}`; regenerated by `{regenerate}`. Last call: `{command}`", "",
              f"Written at commit {result['commit']} (each run's file records the commit it trained at). "
              f"Machine: {result['machine']}.", "",
              "Each run is reported at the end of its full learning-rate schedule (ten halvings), not at a "
              "best-validation checkpoint. 'FNO / model' is the FNO's error over the model's, per seed.", "",
              f"Training time of the runs reported: {spent:.2f} h"
              + ("" if quick else f", against {planned_done:.2f} h the plan expected for them")
              + f" (plan: {sum(r['hours'] for r in rows):.1f} h against {hard.BUDGET_HOURS:.0f} h).", "",
              progress, "",
              markdown_table(summary, models), "", decision_markdown(decision, hard.MODEL_LABELS, sub), ""]
        return "\n".join(md + [f"![{k}]({link(Path(v).name)})" for k, v in pngs.items()]) + "\n"

    (out / "results.md").write_text(report(lambda name: name, "#", "##"))
    for page in docs or ():  # links relative to the page; the report sits inside a "###" section of it
        rel = Path(os.path.relpath(out.resolve(), Path(page).resolve().parent)).as_posix()
        write_docs_blocks(page, DOCS_BLOCKS, dict(report=report(lambda name: f"{rel}/{name}", "####", "####")),
                          "--docs")
    return result

