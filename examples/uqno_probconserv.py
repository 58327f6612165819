"""neuralop's UQNO, then ProbConserv: a calibrated uncertainty band made to conserve mass exactly.

A conservation problem from ``probconserv_ext.problems`` (default: the porous medium equation, whose total grows
with the inflow at the left wall), learned in neuralop's UQNO recipe:

1. a base FNO maps the PDE parameter to the solution at ``nt`` times (one output channel per time slice);
2. a residual FNO (the UQNO's quantile model) is trained with neuralop's ``PointwiseQuantileLoss(alpha)`` on the
   base model's absolute error, so ``solution +- quantile`` is meant to hold ``1 - alpha`` of the nodes;
3. the band is calibrated on held-out data with one conformal factor ``lambda``: for ``1 - delta`` of the
   functions, at least ``1 - alpha`` of their nodes lie in ``solution +- lambda * quantile``;
4. ``probconserv_ext.from_uqno`` turns the calibrated band into per-node variances (``sigma = lambda q / z``,
   ``z = Phi^-1(1 - alpha / 2)``), and ``ProbConserv`` conditions the prediction on the exact conserved total
   of every time slice.

The conserved total is, by default, the trapezoid total of the exact solution on the grid (``--total grid``): the
problem's closed-form integral (``--total closed-form``) differs from it by the quadrature error, which no field on
the grid can remove. It reports, on the test set, before and after the layer: the MSE, the conservation error
(|trapezoid integral of u - the total|) and the band's coverage (the fraction of nodes within ``mean +- z sigma``,
nominal ``1 - alpha``). Usage::

    python examples/uqno_probconserv.py              # about two minutes on 2 CPU cores
    python examples/uqno_probconserv.py --quick      # seconds, for a smoke test

Writes ``uqno_probconserv.png`` and ``uqno_probconserv.json`` to ``--out`` (default outputs/uqno_probconserv). The
guide's figure, ``docs/images/uqno_probconserv.png``, is ``uqno_probconserv.png`` of a full run (seeded).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from neuralop.losses import LpLoss  # noqa: E402
from neuralop.losses.data_losses import PointwiseQuantileLoss  # noqa: E402  (not re-exported by neuralop.losses)
from neuralop.models import FNO, UQNO  # noqa: E402

from probconserv_ext import (ProbConserv, band_to_std, band_z_score, conservation_constraint, from_uqno,  # noqa: E402
                             get_problem)


def fit(model, x, target, loss_fn, epochs, batch_size, lr, seed):
    """Adam with a cosine schedule, mini-batches in a seeded order; returns seconds spent."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i: i + batch_size]
            loss = loss_fn(model(x[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return time.perf_counter() - t0


def conformal_factor(err, quantile, alpha, delta):
    """neuralop's UQNO calibration: the factor lambda that puts >= 1 - alpha of the nodes of >= 1 - delta of the
    calibration functions inside lambda * quantile (split conformal, finite-sample corrected)."""
    ratio = (err.abs() / quantile.clamp_min(1e-12)).flatten(1)               # per node: needed scale
    per_function = torch.quantile(ratio, 1 - alpha, dim=1)                   # covers 1 - alpha of its nodes
    n = per_function.numel()
    level = min(1.0, math.ceil((n + 1) * (1 - delta)) / n)
    return float(torch.quantile(per_function, level))


def coverage(u, mean, std, z):
    return float(((u - mean).abs() <= z * std).double().mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="pme", help="one of probconserv_ext.PROBLEMS (default pme)")
    p.add_argument("--alpha", type=float, default=0.1, help="1 - alpha: the band's pointwise coverage")
    p.add_argument("--delta", type=float, default=0.1, help="1 - delta: the share of functions it holds for")
    p.add_argument("--total", choices=("grid", "closed-form"), default="grid",
                   help="the total to conserve: 'grid' (default), the trapezoid rule applied to the exact solution, "
                        "the total a field on this grid can have; 'closed-form', the problem's exact integral, which "
                        "differs from it by the quadrature error (large at the PME's front)")
    p.add_argument("--quick", action="store_true", help="tiny data and a few epochs (smoke test)")
    p.add_argument("--out", default="outputs/uqno_probconserv", help="output folder")
    p.add_argument("--threads", type=int, default=1, help="torch threads (small models gain nothing from more)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    problem = get_problem(args.problem)
    n_train, n_cal, n_test, nx, nt = (24, 16, 16, 32, 4) if args.quick else (200, 100, 100, 64, 8)
    epochs = 3 if args.quick else 150
    params = problem.sample_params(n_train + n_cal + n_test, seed=0)
    params = params[torch.randperm(len(params), generator=torch.Generator().manual_seed(1)).numpy()]
    data = problem.make_data(params, nx=nx, nt=nt)
    x = torch.as_tensor(data.inputs, dtype=torch.float32)
    y = torch.as_tensor(data.solution, dtype=torch.float32)                 # (N, nt, nx): time slices as channels
    grid = torch.as_tensor(data.grid, dtype=torch.float64)
    closed_form = torch.as_tensor(data.totals, dtype=torch.float64)         # (N, nt), the exact integrals
    on_grid = y.double() @ conservation_constraint(grid).G[0]               # the exact solution's trapezoid total
    # The closed-form integral is out of reach of any field on the grid by the quadrature error: constraining to it
    # moves a good prediction away from the truth where that error is large (the PME's front, early times).
    quadrature_error = (on_grid - closed_form).abs()
    totals = on_grid if args.total == "grid" else closed_form
    train, cal, test = (slice(0, n_train), slice(n_train, n_train + n_cal), slice(n_train + n_cal, None))
    print(f"{problem.name}: {n_train} train / {n_cal} calibration / {n_test} test samples, {nx} nodes, {nt} times")

    # 1. the base model: an FNO fitted to the solutions
    arch = dict(n_modes=(16,), in_channels=2, out_channels=nt, hidden_channels=32, n_layers=4)
    base = FNO(**arch)
    s_base = fit(base, x[train], y[train], LpLoss(d=1, p=2), epochs, 20, 2e-3, seed=0)
    # 2. the quantile model, trained on the frozen base model's errors (UQNO copies the base for it by default)
    uqno = UQNO(base, residual_model=copy.deepcopy(base))
    with torch.no_grad():
        err_train = y[train] - base(x[train])
    s_res = fit(uqno.residual_model, x[train], err_train, PointwiseQuantileLoss(alpha=args.alpha), epochs, 20, 1e-3,
                seed=1)
    print(f"trained the base FNO ({s_base:.0f} s) and the quantile FNO ({s_res:.0f} s)")
    with torch.no_grad():
        sol_cal, q_cal = uqno(x[cal])
        sol, q = uqno(x[test])
    # A quantile model's output is unconstrained: a negative width means "no band" there. Made explicit here.
    negative = float((q < 0).double().mean())
    q_cal, q = q_cal.abs(), q.abs()
    # 3. conformal calibration on the held-out set
    lam = conformal_factor(y[cal] - sol_cal, q_cal, args.alpha, args.delta)
    print(f"calibration factor lambda = {lam:.3f} (alpha = {args.alpha}, delta = {args.delta}); "
          f"{100 * negative:.1f}% of the raw test widths were negative (their absolute value is used)")

    # 4. the calibrated band as a Gaussian, conditioned on the conserved total of every time slice
    coverage_level = 1 - args.alpha
    z = band_z_score(coverage_level)
    w = conservation_constraint(grid).G[0]
    # A band fixes each node's variance, not how node errors move together. Their correlation shows in the total:
    # under Sigma = (1 - rho) diag(sigma^2) + rho sigma sigma^T, E[(w.e)^2] = (1 - rho) A + rho B. Fit rho on the
    # calibration set (moments), kept in [0, 1] (the model's range) and reported.
    sig_cal = band_to_std(q_cal.double(), coverage_level, lam)
    e_tot = ((y[cal] - sol_cal).double() @ w).square().mean()
    A, B = (sig_cal.square() * w.square()).sum(-1).mean(), (sig_cal @ w).square().mean()
    rho_raw = float((e_tot - A) / (B - A))
    rho = min(max(rho_raw, 0.0), 1.0)
    print(f"conserved total: {args.total} (the trapezoid total of the exact solution differs from the closed-form "
          f"integral by {float(quadrature_error[test].mean()):.1e} on average, at most "
          f"{float(quadrature_error[test].max()):.1e})")
    print(f"error correlation fitted on the calibration totals: rho = {rho_raw:.3f} (used: {rho:.3f})")
    layer = ProbConserv(conservation_constraint(grid, total=totals[test]))
    # float64 in, float64 out: the conservation error after the layer is then float64 round-off
    prior = from_uqno(sol.double(), q.double(), coverage=coverage_level, calibration=lam, floor=1e-8)
    series = {"UQNO": dict(mean=sol.double(), std=prior.variance.double().sqrt())}
    for name, correlation in (("UQNO + ProbConserv", 0.0), ("UQNO + ProbConserv, correlated", rho)):
        post = layer(from_uqno(sol.double(), q.double(), coverage=coverage_level, calibration=lam, floor=1e-8,
                               correlation=correlation))
        series[name] = dict(mean=post.mean.double(), std=post.variance.double().clamp_min(0).sqrt())
    y_test = y[test].double()
    results = {}
    for name, r in series.items():
        cons = (r["mean"] @ w - totals[test]).abs()                           # (n_test, nt)
        results[name] = dict(
            mse=float((r["mean"] - y_test).square().mean()),
            conservation_error_mean=float(cons.mean()), conservation_error_max=float(cons.max()),
            coverage=coverage(y_test, r["mean"], r["std"], z),
        )
    results["settings"] = dict(problem=problem.name, alpha=args.alpha, delta=args.delta,
                               nominal_coverage=coverage_level,
                               total=args.total, quadrature_error_mean=float(quadrature_error[test].mean()),
                               quadrature_error_max=float(quadrature_error[test].max()),
                               z=z, calibration_factor=lam, correlation_fitted=rho_raw, correlation=rho,
                               negative_width_fraction=negative, n_train=n_train, n_cal=n_cal, n_test=n_test, nx=nx,
                               nt=nt, epochs=epochs, train_seconds=s_base + s_res)

    print(f"\nTest set, {n_test} samples x {nt} time slices x {nx} nodes; coverage: share of nodes within "
          f"mean +- {z:.3f} sigma (nominal {coverage_level:.2f})")
    print("\n| prediction | MSE | mean conservation error | max conservation error | coverage |")
    print("|---|---:|---:|---:|---:|")
    for name in series:
        r = results[name]
        print(f"| {name} | {r['mse']:.3e} | {r['conservation_error_mean']:.2e} | {r['conservation_error_max']:.2e} | "
              f"{r['coverage']:.3f} |")
    (out / "uqno_probconserv.json").write_text(json.dumps(results, indent=2))
    plot(out / "uqno_probconserv.png", problem, data, grid, y_test, totals[test], series, results, z, w)
    print(f"\nwrote {out / 'uqno_probconserv.png'} and {out / 'uqno_probconserv.json'}")
    return results


STYLE = {"UQNO": ("C1", "o"), "UQNO + ProbConserv": ("C2", "s"), "UQNO + ProbConserv, correlated": ("C0", "^")}


def plot(path, problem, data, grid, y, totals, series, results, z, w):
    """Left: the test slice with the largest total error, its error and bands; middle: the total over time; right:
    the numbers."""
    fig, ax = plt.subplots(1, 3, figsize=(18, 5.2), gridspec_kw=dict(width_ratios=(1.1, 1.0, 0.9)))
    before = series["UQNO"]["mean"] @ w - totals
    k, t = divmod(int(before.abs().argmax()), before.shape[1])
    xs = grid.numpy()
    a = ax[0]
    a.axhline(0.0, color="k", lw=1)
    for name, r in series.items():
        c = STYLE[name][0]
        e, s = (r["mean"] - y)[k, t], r["std"][k, t]
        a.plot(xs, e, color=c, lw=1.2, label=f"{name}: mean - exact")
        a.fill_between(xs, -z * s, z * s, color=c, alpha=0.25, lw=0, label=f"{name}: band +- z sigma")
    a.set_title(f"Test sample {k} at t = {data.times[t]:.2f} (the largest total error, {float(before[k, t]):.1e}):\n"
                f"error of the mean and calibrated {results['settings']['nominal_coverage']:.0%} band", fontsize=10)
    a.set_xlabel("x")
    a.set_ylabel("u - exact")
    a.legend(fontsize=7.5)

    a = ax[1]
    floor = 1e-16
    for name, r in series.items():
        c, mk = STYLE[name]
        cons = (r["mean"] @ w - totals).abs().clamp_min(floor)
        a.semilogy(data.times, cons.mean(0), color=c, marker=mk, label=f"{name} (mean over test set)")
        a.fill_between(data.times, cons.min(0).values, cons.max(0).values, color=c, alpha=0.2, lw=0)
    a.set_title("Conservation error |trapezoid integral of u - total|\n"
                f"(shaded: min to max; below {floor:.0e} drawn at it)", fontsize=10)
    a.set_xlabel("t")
    a.set_ylabel("absolute error (log scale)")
    a.legend(fontsize=8)

    a = ax[2]
    a.axis("off")
    rows = [["", "UQNO", "+ ProbConserv", "+ ProbConserv\n(correlated)"]]
    for key, label, fmt in (("mse", "MSE", "{:.2e}"), ("conservation_error_mean", "mean cons. error", "{:.1e}"),
                            ("conservation_error_max", "max cons. error", "{:.1e}"),
                            ("coverage", f"coverage\n(nominal {results['settings']['nominal_coverage']:.2f})",
                             "{:.3f}")):
        rows.append([label] + [fmt.format(results[n][key]) for n in series])
    table = a.table(cellText=rows, loc="center", cellLoc="center", colWidths=[0.31, 0.23, 0.23, 0.23])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 2.6)
    s = results["settings"]
    a.set_title(f"Test set: {s['n_test']} samples x {s['nt']} times x {s['nx']} nodes\n"
                f"lambda = {s['calibration_factor']:.2f} (conformal), rho = {s['correlation']:.3f} (fitted)",
                fontsize=10)
    what = ("the exact solution's trapezoid total" if results["settings"]["total"] == "grid"
            else "the closed-form total")
    fig.suptitle(f"neuralop UQNO on the {problem.name} problem, then ProbConserv conserving {what} "
                 "(from_uqno: sigma = lambda q / z)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
