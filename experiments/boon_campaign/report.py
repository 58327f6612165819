"""The BOON reproduction's report: the table over seeds, training curves, solution plots and the generated
blocks of documentation pages (``reproduce_boon.py --docs``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.boon_campaign.configurations import MODEL_LABELS
from experiments.docs_blocks import check_docs_blocks, markers
from experiments.docs_blocks import write_docs_blocks as _write_blocks


def _stats(vals):
    a = np.asarray(vals, dtype=float)
    return dict(median=float(np.median(a)), min=float(a.min()), max=float(a.max()))


def summarize(runs, problems, models):
    """Median and min..max over seeds per problem and model; FNO / model factors per seed."""
    summary = {}
    for prob in problems:
        summary[prob] = {}
        for m in models:
            rs = sorted((r for r in runs if r["problem"] == prob and r["model"] == m), key=lambda r: r["seed"])
            if not rs:
                continue
            if any("not_defined" in r for r in rs):
                summary[prob][m] = {"not_defined": rs[0]["not_defined"], "n_seeds": 0}
                continue
            entry = {k: _stats([r[k] for r in rs]) for k in
                     ("rel_l2", "rel_l2_interior", "rel_l2_near_boundary", "train_seconds", "epochs")}
            entry["boundary_error"] = max(r["boundary_error"] for r in rs)
            entry["boundary_error_float64"] = max(r["boundary_error_float64"] for r in rs)
            entry["converged"] = sum(bool(r["converged"]) for r in rs)
            entry["seeds"] = [r["seed"] for r in rs]
            entry["n_seeds"] = len(rs)
            summary[prob][m] = entry
        fno = {r["seed"]: r for r in runs if r["problem"] == prob and r["model"] == "fno"}
        for m in models:
            e = summary[prob].get(m)
            if m == "fno" or not e or "not_defined" in e:
                continue
            per_seed = [fno[r["seed"]]["rel_l2"] / r["rel_l2"]
                        for r in runs if r["problem"] == prob and r["model"] == m and r["seed"] in fno]
            if per_seed:
                e["factor"] = dict(_stats(per_seed), n=len(per_seed))
    return summary


def training_time_line(runs):
    """One sentence with the training time summed over the finished runs, for the report's header.

    The per-run medians are in the table; the sum is what the whole reproduction costs to rerun, in
    process-hours (divide by the number of parallel processes for the wall time).
    """
    trained = [r for r in runs if "not_defined" not in r]
    hours = sum(r["train_seconds"] for r in trained) / 3600
    threads = sorted({r["threads"] for r in trained if r.get("threads")})
    unrecorded = sum(not r.get("threads") for r in trained)
    per_run = "Torch threads per run: " + (", ".join(map(str, threads)) or "not recorded")
    if threads and unrecorded:
        per_run += f"; {unrecorded} earlier runs did not record it"
    return (f"Training time summed over the {len(trained)} finished runs: {hours:.1f} h of optimizer steps (the "
            f"per-epoch evaluation of validation and test is not counted). {per_run}.")


def markdown_table(summary, models):
    lines = [
        "| problem | model | seeds | rel. L2, median [min..max] | interior | near boundary | boundary error f32 / f64 "
        "(max) | FNO / model, median [min..max] | epochs | converged | train s (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    # Three significant digits: converged errors are of order 1e-3, where fixed decimals would hide differences.
    def mm(s, fmt="{:.3g}"):
        return f"{fmt.format(s['median'])} [{fmt.format(s['min'])}..{fmt.format(s['max'])}]"

    for prob, per_model in summary.items():
        for m in models:
            if m not in per_model:
                continue
            e = per_model[m]
            if "not_defined" in e:
                lines.append(f"| {prob} | {MODEL_LABELS[m]} | - | {e['not_defined']} | | | | | | | |")
                continue
            factor = mm(e["factor"], "{:.2f}") if "factor" in e else "-"
            if "factor" in e and e["factor"]["n"] != e["n_seeds"]:  # seeds without an FNO run have no ratio
                factor += f" ({e['factor']['n']} seeds)"
            lines.append(
                f"| {prob} | {MODEL_LABELS[m]} | {e['n_seeds']} | {mm(e['rel_l2'])} | {mm(e['rel_l2_interior'])} | "
                f"{e['rel_l2_near_boundary']['median']:.3g} | {e['boundary_error']:.1e} / "
                f"{e['boundary_error_float64']:.1e} | {factor} | {e['epochs']['median']:.0f} | "
                f"{e['converged']}/{e['n_seeds']} | {e['train_seconds']['median']:.0f} |"
            )
    return "\n".join(lines)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(out_dir, prob, model, runs):
    """Train loss and test error against epoch, one line per seed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in sorted(runs, key=lambda r: r["seed"]):
        ep = np.arange(1, len(r["train_loss"]) + 1)
        axes[0].semilogy(ep, r["train_loss"], label=f"seed {r['seed']}")
        axes[1].semilogy(ep, r["test_rel_l2"], label=f"seed {r['seed']}")
    axes[0].set(xlabel="epoch", ylabel="train loss (relative L2, per sample)", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="test relative L2", title="test error")
    for ax in axes:
        ax.legend(fontsize=8)
    return _save(plt, fig, f"{prob}: {MODEL_LABELS[model]}", Path(out_dir) / f"curves_{prob}_{model}.png")


def plot_solutions(out_dir, prob, problem, test0, runs):
    """Solution and error near the boundaries on test sample 0, for each model's first seed."""
    plt = _plt()
    grid = problem.grid.numpy()
    y = problem.y[test0, 0].double().numpy()
    if y.ndim == 2:
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        times = problem.times.numpy()
        w = max(4, len(grid) // 3)
        axes[2].plot(grid[:w], y[:w, -1], "k-", lw=2, label="truth")
        for r in runs:
            p = np.asarray(r["pred_sample0"])
            axes[0].semilogy(times, r["rel_l2_over_time"], label=MODEL_LABELS[r["model"]])
            axes[1].semilogy(grid, np.abs(p[:, -1] - y[:, -1]) + 1e-16, label=MODEL_LABELS[r["model"]])
            axes[2].plot(grid[:w], p[:w, -1], "--", label=MODEL_LABELS[r["model"]])
        axes[0].set(xlabel="t", ylabel="relative L2 (test mean)", title="error over time")
        axes[1].set(xlabel="y", ylabel="|error| at final time", title="error over space (sample 0)")
        axes[2].set(xlabel="y", title="solution near the oscillating wall (final time)")
        for ax in axes:
            ax.legend(fontsize=7)
    else:
        fig, axes = plt.subplots(2, 2, figsize=(11, 7))
        w = max(4, len(grid) // 8)
        for col, sl in enumerate([slice(0, w), slice(len(grid) - w, len(grid))]):
            axes[0, col].plot(grid[sl], y[sl], "k-", lw=2, label="truth")
            for r in runs:
                p = np.asarray(r["pred_sample0"])
                axes[0, col].plot(grid[sl], p[sl], ".--", label=MODEL_LABELS[r["model"]])
                axes[1, col].semilogy(grid[sl], np.abs(p[sl] - y[sl]) + 1e-16, ".-", label=MODEL_LABELS[r["model"]])
            axes[0, col].set(title=f"solution near the {'left' if col == 0 else 'right'} boundary", xlabel="x")
            axes[1, col].set(title="|error| (floored at 1e-16)", xlabel="x")
            axes[0, col].legend(fontsize=7)
            axes[1, col].legend(fontsize=7)
    return _save(plt, fig, f"{prob}: test sample 0, seed {runs[0]['seed']}", Path(out_dir) / f"{prob}.png")


def _save(plt, fig, title, path):
    """Title ``fig``, write it to ``path`` and close it; returns the file name (the report links it)."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


DOCS_BEGIN, DOCS_END = markers("reproduce_boon")
SUMMARY_BEGIN, SUMMARY_END = markers("reproduce_boon", "summary")
# What each kind of generated block holds (see ``reproduce_boon.run``'s ``docs``).
DOCS_BLOCKS = dict(report=(DOCS_BEGIN, DOCS_END), summary=(SUMMARY_BEGIN, SUMMARY_END))


def check_docs_block(docs):
    """The kinds of generated block (keys of ``DOCS_BLOCKS``) that the Markdown file ``docs`` holds.

    Raises ``ValueError`` (naming ``docs``) for an unreadable file, a file with no block, a block whose begin
    and end lines are not there once each, begin first, or blocks that overlap
    (:func:`experiments.docs_blocks.read_docs_blocks`).
    """
    return check_docs_blocks(docs, DOCS_BLOCKS, "docs")


def write_docs_blocks(docs, bodies):
    """Replace each generated block of ``docs`` (see :func:`check_docs_block`) with ``bodies[kind]``."""
    return _write_blocks(docs, DOCS_BLOCKS, bodies, "docs")
