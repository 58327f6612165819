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

    python -m experiments.reproduce_probconserv --quick           # < 2 minutes on 2 CPU cores
    python -m experiments.reproduce_probconserv                   # full mode, < 30 minutes on 2 CPU cores
    python -m experiments.reproduce_probconserv --regime paper --quick   # the paper's regime, < 1 minute
    python -m experiments.reproduce_probconserv --regime paper    # about 45 minutes on 2 shared CPU cores

``--regime paper`` is the paper's own setting: an attentive neural process (``AttentiveNeuralProcess``) conditioned
at test time on 100 observations of each test solution, Stefan on ``t in (0, 0.1]`` with metrics at
``t = 0.05`` (and 0.02, 0.08), 201 nodes, 50 test functions per parameter, shock positions by the paper's rule (first
node with ``u <= 0``) and by the crossing of ``p*/2``. It writes ``results_paper.md`` and ``results_paper.json``.

References
----------
Hansen, Maddix, Alizadeh, Gupta, Mahoney (2023). Learning physical models that can respect conservation laws.
ICML 2023.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from experiments.provenance import command_line, machine_description
from probconserv_ext import conservation_constraint
from probconserv_ext.metrics import METHODS, compare_methods, draw_samples, shock_positions
from probconserv_ext.models import (
    AttentiveNeuralProcess,
    FNOEnsemble,
    HeteroscedasticFNO,
    fit_ensemble,
    fit_heteroscedastic,
    fit_neural_process,
)
from probconserv_ext.models.neural_process import sample_observations
from probconserv_ext.problems import PROBLEMS, get_problem, trapezoid_weights

REPO = Path(__file__).resolve().parents[1]  # the default output folder is the clone's outputs/

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
    p.add_argument("--problems", nargs="+", default=None, choices=list(PROBLEMS),
                   help="default: all four (default regime), stefan diffusion pme (paper regime)")
    p.add_argument("--seed", type=int, default=0)
    # one thread: these small FNOs gain little from intra-op parallelism, and on a shared 2-core machine a second
    # thread spin-waits (measured 20x slower training under load)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="override the mode's training epochs")
    p.add_argument("--n-train", type=int, default=None, help="override the number of training parameters")
    p.add_argument("--members", type=int, default=None, help="override the ensemble size (>= 2)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--regime", choices=("default", "paper"), default="default",
                   help="'paper': the paper's setting (attentive neural process conditioned on 100 observations of "
                        "each test solution, Stefan on t in (0, 0.1], 201 nodes; problems stefan, diffusion, pme)")
    p.add_argument("--steps", type=int, default=None, help="paper regime: override the ANP's Adam steps")
    p.add_argument("--n-test", type=int, default=None, help="paper regime: test functions per parameter")
    p.add_argument("--n-samples", type=int, default=None, help="paper regime: posterior samples per function")
    p.add_argument("--n-latent", type=int, default=None, help="paper regime: latent draws of the ANP")
    args = p.parse_args(argv)
    for name in ("epochs", "n_train", "threads", "steps", "n_test", "n_samples", "n_latent"):
        v = getattr(args, name)
        if v is not None and v < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.problems is None:
        args.problems = list(PAPER_PROBLEMS) if args.regime == "paper" else list(PROBLEMS)
    elif args.regime == "paper" and set(args.problems) - set(PAPER_PROBLEMS):
        p.error(f"--regime paper covers {sorted(PAPER_PROBLEMS)}, got {args.problems}")
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


# ------------------------------------------------------------------------------------------------ paper regime
# The ProbConserv paper's own setting: an attentive neural process conditioned at test time on 100 exact
# observations (10 time slices x 10 nodes) of the very solution it predicts, 201 nodes, metrics at the middle of the
# time window (and at 1/5 and 4/5 of it). Training ranges and test parameters per problem; the Stefan window is the
# paper's t in (0, 0.1]; diffusion and PME keep this project's generators' windows (t in (0, 0.5]).
PAPER_PROBLEMS = {
    "stefan": dict(t_final=0.1, train_range=(0.55, 0.7), test_params=(0.6, 0.5)),
    "diffusion": dict(t_final=0.5, train_range=(1.0, 5.0), test_params=(1.0, 5.0)),
    "pme": dict(t_final=0.5, train_range=(1.0, 6.0), test_params=(1.0, 3.0, 6.0)),
}
PAPER_TIME_FRACTIONS = (0.2, 0.5, 0.8)  # of t_final: 0.02, 0.05, 0.08 for Stefan; the middle one is the headline
# The paper trains on 10,000 functions for 500 epochs at lr 1e-4 (hidden 128, 100 latent draws). On 2 shared CPU
# cores the full mode trains on fewer functions and Adam steps with a larger learning rate (stated in the results).
PAPER_CONFIGS = {
    "quick": dict(nx=201, nt=50, n_train=200, steps={"stefan": 150, "diffusion": 60, "pme": 60}, hidden=32,
                  latent=32, heads=4, lr=1e-3, batch_size=8, n_target=256, n_test=5, n_latent=20, n_samples=100,
                  obs_times=10, obs_points=10),
    "full": dict(nx=201, nt=50, n_train=2000, steps={"stefan": 8000, "diffusion": 3000, "pme": 4000}, hidden=128,
                 latent=128, heads=4, lr=1e-3, batch_size=16, n_target=256, n_test=50, n_latent=100, n_samples=500,
                 obs_times=10, obs_points=10),
}
PAPER_VAR_FLOOR = 1e-6  # the decoder's std floor is 1e-3


def _paper_fields(problem, params, grid, times):
    return np.stack([problem.solution(grid, times, p) for p in params])


def run_paper_problem(name, cfg, args, log):
    """Train an ANP on one problem and compare the four methods at every test parameter; rows of metrics."""
    problem = get_problem(name)
    spec = PAPER_PROBLEMS[name]
    grid = problem.grid(cfg["nx"])
    times = spec["t_final"] * np.arange(1, cfg["nt"] + 1) / cfg["nt"]
    lo, hi = problem.domain
    x_s = torch.tensor((grid - lo) / (hi - lo), dtype=torch.float32)   # the model sees (x, t) scaled to [0, 1]
    t_s = torch.tensor(times / spec["t_final"], dtype=torch.float32)
    rng = np.random.default_rng(args.seed)
    params = np.sort(rng.uniform(*spec["train_range"], size=cfg["n_train"]))
    fields = torch.tensor(_paper_fields(problem, params, grid, times), dtype=torch.float32)

    t0 = time.perf_counter()
    model = AttentiveNeuralProcess(2, hidden=cfg["hidden"], latent=cfg["latent"], n_heads=cfg["heads"],
                                   seed=args.seed)
    losses = fit_neural_process(model, fields, x_s, t_s, steps=cfg["steps"][name], lr=cfg["lr"],
                                batch_size=cfg["batch_size"], n_times=cfg["obs_times"], n_points=cfg["obs_points"],
                                n_target=cfg["n_target"], seed=args.seed, progress=not args.no_progress)
    train_s = time.perf_counter() - t0
    log(f"[paper/{name}] trained the ANP ({cfg['steps'][name]} steps) in {train_s:.1f} s, "
        f"final loss {np.mean(losses[-50:]):.3f}")

    t_idx = [int(round(f * cfg["nt"])) - 1 for f in PAPER_TIME_FRACTIONS]
    t_eval = times[t_idx]
    constraint = conservation_constraint(torch.tensor(grid, dtype=torch.float64))
    methods = METHODS if name != "diffusion" else tuple(m for m in METHODS if m != "probconserv+nn")
    gen = torch.Generator().manual_seed(args.seed + 1)
    h = float(grid[1] - grid[0])
    rows = []
    for param in spec["test_params"]:
        field = torch.tensor(problem.solution(grid, times, param), dtype=torch.float32)
        batch = field.expand(cfg["n_test"], -1, -1)
        # each test function: the same solution observed at its own random 10 time slices x 10 nodes
        ti, xi = sample_observations(batch, cfg["obs_times"], cfg["obs_points"], gen)
        rows_b = torch.arange(cfg["n_test"])[:, None]
        xc = torch.stack([x_s[xi], t_s[ti]], -1)
        uc = batch[rows_b, ti, xi]
        xt = torch.stack(torch.broadcast_tensors(x_s[None, :], t_s[t_idx][:, None]), -1)
        xt = xt.expand(cfg["n_test"], -1, -1, -1)                     # (n_test, 3, nx, 2)
        pred = model.predict(xc, uc, xt, n_latent=cfg["n_latent"], generator=gen)   # Normal (n_test, 3, nx)
        y = torch.tensor(problem.solution(grid, t_eval, param), dtype=torch.float64).expand(cfg["n_test"], -1, -1)
        b = torch.tensor(problem.total(t_eval, param), dtype=torch.float64)[None, :, None].expand(cfg["n_test"], -1,
                                                                                                  -1)
        res = compare_methods(pred, y, constraint, b=b, methods=methods, var_floor=PAPER_VAR_FLOOR)
        G = constraint.G[0]
        scale = torch.maximum(b[..., 0].abs(), y.abs() @ G)
        mass_err = ((pred.mean @ G - b[..., 0]) / scale).mean(0)     # signed, relative, mean over test functions
        true_shock = problem.shock_position(t_eval, param) if problem.has_shock else None
        for method, r in res.items():
            post = r["posterior"]
            samples = draw_samples(post, (cfg["n_samples"],), gen) if problem.has_shock else None
            for k, t in enumerate(t_eval):
                row = {"regime": "paper", "problem": name, "param_name": problem.param_name, "param": float(param),
                       "method": method, "t": float(t), "headline": k == 1,
                       "mse": float(r["mse"][:, k].mean()), "mse_std": float(r["mse"][:, k].std()),
                       "ce_rel": float(r["ce_rel"][:, k].max()), "ce_abs": float(r["ce_abs"][:, k].max()),
                       "ll": float(r["ll"][:, k].mean()), "base_mass_err": float(mass_err[k]),
                       "min_mean": float(post.mean[:, k].min())}
                if problem.has_shock:
                    s = samples[:, :, k, :]
                    node = _to_np(shock_positions(s, grid, 0.0, rule="node"))
                    cross = _to_np(shock_positions(s, grid, problem.shock_threshold(param), rule="crossing"))
                    row.update(shock_true=float(true_shock[k]), grid_h=h,
                               shock_node_mean=float(node.mean()), shock_node_std=float(node.std()),
                               shock_cross_mean=float(cross.mean()), shock_cross_std=float(cross.std()))
                rows.append(row)
    return rows, train_s, losses


def paper_tables(rows):
    """Markdown tables per problem and parameter at the headline time, and the MSE ratios at every time."""
    out = []
    keys = sorted({(r["problem"], r["param"]) for r in rows}, key=lambda k: (list(PAPER_PROBLEMS).index(k[0]), k[1]))
    for prob, par in keys:
        sel = [r for r in rows if r["problem"] == prob and r["param"] == par and r["headline"]]
        r0 = sel[0]
        shock = "shock_true" in r0
        out += [f"### {prob}, {r0['param_name']} = {par:g}, t = {r0['t']:g}", "",
                f"Base model's relative mass error (integral of its mean - b) / b, mean over the test functions: "
                f"{r0['base_mass_err']:+.2%}.", ""]
        head = ["method", "MSE (mean ± std over functions)", "MSE uncon / method", "CE rel (max)", "LL"]
        if shock:
            head += ["shock, paper's rule u <= 0 (mean ± std)", "shock, crossing of p*/2 (mean ± std)", "true shock"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        u = next(r for r in sel if r["method"] == "unconstrained")
        for r in sel:
            cells = [r["method"], f"{r['mse']:.3e} ± {r['mse_std']:.1e}", f"{u['mse'] / r['mse']:.2f}x",
                     _fmt(r["ce_rel"]), f"{r['ll']:.3f}"]
            if shock:
                cells += [f"{r['shock_node_mean']:.4f} ± {r['shock_node_std']:.4f}",
                          f"{r['shock_cross_mean']:.4f} ± {r['shock_cross_std']:.4f}", f"{r['shock_true']:.4f}"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out += ["### MSE ratio unconstrained / ProbConserv at every evaluated time", "",
            "| problem | param | t | base mass error (mean) | HardC | ProbConserv | ProbConserv+nn |",
            "|---|---|---|---|---|---|---|"]
    by = {(r["problem"], r["param"], r["t"], r["method"]): r for r in rows}
    for prob, par, t in sorted({(r["problem"], r["param"], r["t"]) for r in rows},
                               key=lambda k: (list(PAPER_PROBLEMS).index(k[0]), k[1], k[2])):
        u = by[(prob, par, t, "unconstrained")]
        cells = [prob, f"{u['param_name']}={par:g}", f"{t:g}", f"{u['base_mass_err']:+.2%}"]
        for m in ("hardc", "probconserv", "probconserv+nn"):
            r = by.get((prob, par, t, m))
            cells.append("n/a" if r is None else f"{u['mse'] / r['mse']:.2f}x")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _run_paper(args, argv):
    mode = "quick" if args.quick else "full"
    cfg = json.loads(json.dumps(PAPER_CONFIGS[mode]))
    if args.n_train is not None:
        cfg["n_train"] = args.n_train
    if args.steps is not None:
        cfg["steps"] = {k: args.steps for k in cfg["steps"]}
    for key in ("n_test", "n_samples", "n_latent"):
        v = getattr(args, key)
        if v is not None:
            cfg[key] = v
    names = list(args.problems)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda s: None) if args.no_progress else (lambda s: print(s, flush=True))
    t_start = time.perf_counter()
    all_rows, timings, curves = [], {}, {}
    for name in names:
        rows, train_s, losses = run_paper_problem(name, cfg, args, log)
        all_rows += rows
        timings[name] = train_s
        curves[name] = [float(np.mean(losses[i:i + 50])) for i in range(0, len(losses), 50)]
        log(paper_tables(rows))
    wall = time.perf_counter() - t_start
    meta = _run_record(argv, regime="paper", mode=mode, config=cfg, seed=args.seed, threads=args.threads,
                       problems=names, wall_s=wall, train_s=timings, ll_variance_floor=PAPER_VAR_FLOOR,
                       loss_per_50_steps=curves)
    machine = meta["machine"]
    with open(out / "results_paper.json", "w") as f:
        json.dump({"meta": meta, "rows": all_rows}, f, indent=1)
    md = [f"# ProbConserv, the paper's regime ({mode} mode)", "",
          f"Command: `{meta['command']}`  ", f"Machine: {machine}; torch {torch.__version__}, "
          f"{args.threads} thread(s); wall time {wall:.1f} s; training {json.dumps(timings)} s.", "",
          f"Config: {json.dumps(cfg)}", "",
          "Base model: attentive neural process conditioned on the test solution's own observations "
          f"({cfg['obs_times']} time slices x {cfg['obs_points']} nodes per test function, {cfg['n_test']} test "
          "functions per parameter). MSE and LL per node, averaged over the test functions; CE rel = "
          "|integral of the mean - b(t)| / max(|b|, integral of |u|), largest over the functions; LL with variances "
          f"floored at {PAPER_VAR_FLOOR:g}; shock positions from {cfg['n_samples']} posterior samples per function.",
          "", paper_tables(all_rows), ""]
    (out / "results_paper.md").write_text("\n".join(md))
    log(f"wrote {out / 'results_paper.md'} and {out / 'results_paper.json'} in {wall:.1f} s")
    return {"meta": meta, "rows": all_rows}


def _run_record(argv, **fields):
    """The run's settings, with the machine, torch version and the exact command line (for the results files)."""
    machine = machine_description()
    command = command_line("reproduce_probconserv", argv if argv is not None else sys.argv[1:])
    return {**fields, "machine": machine, "torch": torch.__version__, "command": command}


def main(argv=None):
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run_paper(args, argv) if args.regime == "paper" else _run(args, argv)
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
    meta = _run_record(argv, mode=mode, config=cfg, seed=args.seed, threads=args.threads, problems=args.problems,
                       wall_s=wall, train_s=timings, ll_variance_floor=VAR_FLOOR, plots=files)
    machine = meta["machine"]
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
