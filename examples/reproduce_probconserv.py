"""Reproduce the ProbConserv comparison on the generalized porous-medium equation (and linear advection).

For each problem (diffusion, porous medium, Stefan, advection) the script trains two probabilistic neural
operators on neuralop's FNO -- a deep ensemble (mean + low-rank covariance) and a heteroscedastic FNO (mean +
log-variance, Gaussian likelihood) -- on PDE parameters drawn from the paper's training range, then compares at
each fixed test parameter and at the fixed time ``t = 0.5``:

* ``unconstrained``: the model's Gaussian prediction;
* ``hardc``: least-squares projection of the mean on the conservation constraint (HardC);
* ``probconserv``: the Bayesian update with the conserved total ``b(t)`` per time slice;
* ``probconserv+nn``: the same with a non-negative mean (not for diffusion, whose solution changes sign).

Metrics: MSE, conservation error (absolute and relative to the integral of ``|u|``), per-node Gaussian
log-likelihood, and for the shock problems the shock position from posterior samples. Writes ``results.md``,
``results.json`` and PNG plots to ``--out``.

Usage::

    python examples/reproduce_probconserv.py --quick           # < 2 minutes on 2 CPU cores
    python examples/reproduce_probconserv.py                   # full mode, < 30 minutes on 2 CPU cores

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from probconserv_ext import conservation_constraint  # noqa: E402
from probconserv_ext.metrics import METHODS, compare_methods, draw_samples, shock_positions  # noqa: E402
from probconserv_ext.models import (  # noqa: E402
    FNOEnsemble,
    HeteroscedasticFNO,
    fit_ensemble,
    fit_heteroscedastic,
)
from probconserv_ext.problems import PROBLEMS, get_problem, trapezoid_weights  # noqa: E402

# "ensemble": sample covariance of the members (rank S - 1) plus jitter; "ensemble-shrunk": the same ensemble
# with half of the sample covariance moved to its diagonal (same marginal variances, full rank).
MODELS = ("ensemble", "ensemble-shrunk", "hetero")
SHRINKAGE = {"ensemble": 0.0, "ensemble-shrunk": 0.5}

CONFIGS = {
    "quick": dict(nx=65, nt=5, n_train=16, members=3, epochs=60, width=16, modes=8, layers=2, lr=5e-3,
                  batch_size=16, n_samples=200, hetero_warmup=0.6),
    "full": dict(nx=101, nt=10, n_train=48, members=4, epochs=150, width=24, modes=12, layers=3, lr=3e-3,
                 batch_size=24, n_samples=2000, hetero_warmup=0.6),
}

# Variance floor used in the per-node log-likelihood: the models' own resolution (ensemble jitter and the
# heteroscedastic variance floor), so that nodes pinned at zero variance by the non-negative update do not
# produce unbounded densities.
VAR_FLOOR = 1e-6


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small models and data (< 2 min on 2 cores)")
    p.add_argument("--out", default=str(REPO / "outputs" / "probconserv"), help="output directory")
    p.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    p.add_argument("--seed", type=int, default=0)
    # one thread: these small FNOs gain little from intra-op parallelism, and on a shared 2-core machine a second
    # thread spin-waits (measured 20x slower training under load)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's training epochs")
    p.add_argument("--n-train", type=int, default=None, help="override the number of training parameters")
    p.add_argument("--members", type=int, default=None, help="override the ensemble size (>= 2)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = p.parse_args(argv)
    for name in ("epochs", "n_train", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.members is not None and args.members < 2:
        p.error(f"--members must be >= 2 (the ensemble covariance has rank members - 1), got {args.members}")
    return args


# ------------------------------------------------------------------------------------------------ helpers
def _to_np(t):
    return t.detach().to(torch.float64).cpu().numpy()


def predict(model, kind, x):
    """The model's Gaussian prediction (a torch distribution, float64), batch shape (1, nt), event (nx,)."""
    return model.predict(x) if kind == "hetero" else model.predict(x, shrinkage=SHRINKAGE[kind])


# ------------------------------------------------------------------------------------------------ one problem
def run_problem(name, cfg, args, log):
    problem = get_problem(name)
    # every random draw below takes its seed explicitly (models, data order, posterior samples): the global
    # random state is not used
    train = problem.make_data(problem.sample_params(cfg["n_train"], args.seed), cfg["nx"], cfg["nt"])
    x_tr = torch.tensor(train.inputs, dtype=torch.float32)
    y_tr = torch.tensor(train.solution, dtype=torch.float32)
    fno = dict(n_modes=cfg["modes"], hidden_channels=cfg["width"], n_layers=cfg["layers"])
    progress = not args.no_progress

    t0 = time.perf_counter()
    ens = FNOEnsemble(cfg["members"], 2, cfg["nt"], jitter=VAR_FLOOR, seed=args.seed, **fno)
    fit_ensemble(ens, x_tr, y_tr, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=cfg["batch_size"],
                 seed=args.seed, progress=progress)
    het = HeteroscedasticFNO(2, cfg["nt"], min_variance=VAR_FLOOR, seed=args.seed, **fno)
    fit_heteroscedastic(het, x_tr, y_tr, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=cfg["batch_size"],
                        seed=args.seed, warmup=cfg["hetero_warmup"], progress=progress)
    train_s = time.perf_counter() - t0
    log(f"[{name}] trained {cfg['members']} ensemble members + 1 heteroscedastic FNO in {train_s:.1f} s")

    grid_t = torch.tensor(train.grid, dtype=torch.float64)
    constraint = conservation_constraint(grid_t)
    h = float(train.grid[1] - train.grid[0])
    rows, plots = [], []
    gen = torch.Generator().manual_seed(args.seed + 1)
    for param in problem.test_params:
        test = problem.make_data([param], cfg["nx"], cfg["nt"])
        x_te = torch.tensor(test.inputs, dtype=torch.float32)
        y = test.solution[0]                       # (nt, nx)
        y_t = torch.tensor(test.solution, dtype=torch.float64)          # (1, nt, nx)
        b = torch.tensor(test.totals, dtype=torch.float64)[..., None]   # (1, nt, 1)
        true_shock = float(problem.shock_position([problem.t_final], param)[0]) if problem.has_shock else None
        plot = {"param": param, "y": y, "grid": test.grid, "times": test.times, "b": test.totals[0],
                "true_shock": true_shock, "models": {}}
        for kind, model in (("ensemble", ens), ("ensemble-shrunk", ens), ("hetero", het)):
            # the solution of the heat problem changes sign: a non-negativity constraint would be wrong there
            methods = METHODS if name != "diffusion" else tuple(m for m in METHODS if m != "probconserv+nn")
            res = compare_methods(predict(model, kind, x_te), y_t, constraint, b=b, methods=methods,
                                  var_floor=VAR_FLOOR)
            plot["models"][kind] = {}
            for method, r in res.items():
                post = r["posterior"]
                mean, var = _to_np(post.mean)[0], _to_np(post.variance)[0]
                row = {
                    "problem": name, "param_name": problem.param_name, "param": param, "model": kind,
                    "method": method, "t": float(test.times[-1]),
                    "mse": float(r["mse"][0, -1]),
                    "ce_abs": float(r["ce_abs"][0, -1]),
                    "ce_rel": float(r["ce_rel"][0, -1]),
                    "ce_rel_max_over_t": float(r["ce_rel"][0].max()),
                    "ll": float(r["ll"][0, -1]),
                    "min_mean": float(mean[-1].min()),
                }
                entry = {"mean": mean, "var": var}
                if problem.has_shock:
                    thr = problem.shock_threshold(param)
                    s = draw_samples(post, (cfg["n_samples"],), gen)[:, 0, -1, :]
                    pos = _to_np(shock_positions(s, test.grid, thr, rule="crossing"))
                    row.update(shock_mean=float(pos.mean()), shock_std=float(pos.std()),
                               shock_true=true_shock, shock_err=float(abs(pos.mean() - true_shock)),
                               shock_mean_pred=float(shock_positions(mean[-1], test.grid, thr, rule="crossing")),
                               grid_h=h)
                    entry["shocks"] = pos
                rows.append(row)
                plot["models"][kind][method] = entry
        plots.append(plot)
    return rows, plots, train_s


# ------------------------------------------------------------------------------------------------ outputs
def _fmt(v, spec=".2e"):
    return "" if v is None else format(v, spec)


def markdown_table(rows):
    has_shock = any("shock_mean" in r for r in rows)
    head = ["problem", "param", "model", "method", "MSE", "CE abs", "CE rel", "CE rel (max over t)", "LL"]
    if has_shock:
        head += ["shock (mean ± std)", "true shock", "|shock err|"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["problem"], f"{r['param_name']}={r['param']:g}", r["model"], r["method"], _fmt(r["mse"]),
                 _fmt(r["ce_abs"]), _fmt(r["ce_rel"]), _fmt(r["ce_rel_max_over_t"]), f"{r['ll']:.3f}"]
        if has_shock:
            if "shock_mean" in r:
                cells += [f"{r['shock_mean']:.4f} ± {r['shock_std']:.4f}", f"{r['shock_true']:.4f}",
                          f"{r['shock_err']:.4f}"]
            else:
                cells += ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(rows):
    """MSE ratio unconstrained / method and LL difference, per problem, parameter and model."""
    lines = ["| problem | param | model | MSE uncon / HardC | MSE uncon / ProbConserv | "
             "MSE uncon / ProbConserv+nn | LL ProbConserv - uncon | max CE rel ProbConserv |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["problem"], r["param"], r["model"]) for r in rows}, key=lambda k: (list(PROBLEMS).index(k[0]),
                                                                                            k[1], k[2]))
    by = {(r["problem"], r["param"], r["model"], r["method"]): r for r in rows}
    for p, par, m in keys:
        u = by[(p, par, m, "unconstrained")]
        cells = [p, f"{u['param_name']}={par:g}", m]
        for meth in ("hardc", "probconserv", "probconserv+nn"):
            r = by.get((p, par, m, meth))
            cells.append("n/a" if r is None else f"{u['mse'] / r['mse']:.2f}x")
        pc = by[(p, par, m, "probconserv")]
        cells += [f"{pc['ll'] - u['ll']:+.3f}", _fmt(pc["ce_rel_max_over_t"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLORS = {"unconstrained": "tab:blue", "hardc": "tab:orange", "probconserv": "tab:green",
          "probconserv+nn": "tab:purple"}


def make_plots(name, problem, plots, w, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    # total mass over time (top) and its error |integral - b(t)| on a log scale (bottom)
    fig, axes = plt.subplots(2, len(plots), figsize=(5 * len(plots), 6.4), squeeze=False, sharex=True)
    for col, pl in enumerate(plots):
        ax, ax_err = axes[0][col], axes[1][col]
        ax.plot(pl["times"], pl["b"], "k-", lw=3, alpha=0.5, label="true total b(t)")
        # the shrunk ensemble has the same unconstrained and HardC means as the plain one: not repeated
        for kind, ls in (("ensemble", "-"), ("hetero", "--")):
            for method in ("unconstrained", "hardc", "probconserv"):
                tot = pl["models"][kind][method]["mean"] @ w
                ax.plot(pl["times"], tot, ls, color=COLORS[method], marker=".", label=f"{kind} {method}")
                ax_err.semilogy(pl["times"], np.maximum(np.abs(tot - pl["b"]), 1e-18), ls, color=COLORS[method],
                                marker=".")
        ax.set_title(f"{name}, {problem.param_name}={pl['param']:g}")
        ax.set_ylabel("integral of u dx")
        ax_err.set_ylabel("|integral - b(t)| (floor 1e-18)")
        ax_err.set_xlabel("t")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    f = out / f"mass_{name}.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)

    for pl in plots:
        # profiles at t_final with +-2 sigma bands; zoom on the shock when there is one
        ncol = 2 if pl["true_shock"] is not None else 1
        fig, axes = plt.subplots(len(MODELS), ncol, figsize=(6 * ncol, 3.4 * len(MODELS)), squeeze=False)
        for r, kind in enumerate(MODELS):
            for c in range(ncol):
                ax = axes[r][c]
                ax.plot(pl["grid"], pl["y"][-1], "k-", lw=2, label="exact")
                for method, e in pl["models"][kind].items():
                    m, s = e["mean"][-1], np.sqrt(np.maximum(e["var"][-1], 0))
                    ax.plot(pl["grid"], m, color=COLORS[method], label=method)
                    ax.fill_between(pl["grid"], m - 2 * s, m + 2 * s, color=COLORS[method], alpha=0.15)
                if c == 1:
                    ax.set_xlim(pl["true_shock"] - 0.2, min(pl["true_shock"] + 0.15, pl["grid"][-1]))
                    ax.axvline(pl["true_shock"], color="k", ls=":")
                    ax.set_title(f"{kind}: zoom at the shock")
                else:
                    ax.set_title(f"{kind}: {name}, {problem.param_name}={pl['param']:g}, t={pl['times'][-1]:g}")
                ax.set_xlabel("x")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        f = out / f"profile_{name}_{pl['param']:g}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(f.name)

        if pl["true_shock"] is None:
            continue
        fig, axes = plt.subplots(1, len(MODELS), figsize=(5.5 * len(MODELS), 3.6))
        for ax, kind in zip(axes, MODELS):
            allpos = np.concatenate([e["shocks"] for e in pl["models"][kind].values()])
            lo, hi = np.quantile(allpos, [0.005, 0.995])
            lo, hi = min(lo, pl["true_shock"]) - 0.01, max(hi, pl["true_shock"]) + 0.01
            bins = np.linspace(lo, hi, 50)
            for method, e in pl["models"][kind].items():
                ax.hist(e["shocks"], bins=bins, histtype="step", lw=1.5, color=COLORS[method], label=method,
                        density=True)
            ax.axvline(pl["true_shock"], color="k", lw=2, label="true shock")
            ax.set_title(f"{kind}: shock position, {name} {problem.param_name}={pl['param']:g}")
            ax.set_xlabel("x*")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        f = out / f"shock_{name}_{pl['param']:g}.png"
        fig.savefig(f, dpi=110)
        plt.close(fig)
        files.append(f.name)
    return files


def main(argv=None):
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args, argv):
    mode = "quick" if args.quick else "full"
    cfg = dict(CONFIGS[mode])
    for key, arg in (("epochs", args.epochs), ("n_train", args.n_train), ("members", args.members)):
        if arg is not None:
            cfg[key] = arg
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if args.no_progress else (lambda s: print(s, flush=True))
    t_start = time.perf_counter()
    all_rows, files, timings = [], [], {}
    for name in args.problems:
        rows, plots, train_s = run_problem(name, cfg, args, log)
        all_rows += rows
        timings[name] = train_s
        if not args.no_plots:
            problem = get_problem(name)
            w = trapezoid_weights(plots[0]["grid"])
            files += make_plots(name, problem, plots, w, out)
    wall = time.perf_counter() - t_start
    machine = f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs visible"
    meta = {"mode": mode, "config": cfg, "seed": args.seed, "threads": args.threads, "problems": args.problems,
            "wall_s": wall, "train_s": timings, "machine": machine, "torch": torch.__version__,
            "command": "python examples/reproduce_probconserv.py " + " ".join(argv if argv is not None
                                                                              else sys.argv[1:]),
            "ll_variance_floor": VAR_FLOOR, "plots": files}
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "rows": all_rows}, f, indent=1)
    md = [f"# ProbConserv reproduction ({mode} mode)", "",
          f"Command: `{meta['command']}`  ", f"Machine: {machine}; torch {torch.__version__}, "
          f"{args.threads} thread(s); wall time {wall:.1f} s.", "",
          f"Config: {json.dumps(cfg)}", "",
          "## Summary (ratios > 1: the constrained model is better)", "", summary_table(all_rows), "",
          "## All metrics at t = 0.5", "",
          "MSE and LL per node; CE = |integral of the mean - b(t)|, relative to max(|b|, integral of |u|); "
          f"LL uses variances floored at {VAR_FLOOR:g}. Shock positions from "
          f"{cfg['n_samples']} posterior samples (first crossing of half the jump height).", "",
          markdown_table(all_rows), ""]
    (out / "results.md").write_text("\n".join(md))
    log(summary_table(all_rows))
    log(f"wrote {out / 'results.md'}, {out / 'results.json'} and {len(files)} PNGs in {wall:.1f} s")
    return {"meta": meta, "rows": all_rows}


if __name__ == "__main__":
    main()
