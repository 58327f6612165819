"""Exact-solution errors and observed convergence orders of the wave and space-time Stokes solvers.

Wave (``solve_wave``, c = 1.3, t = 0.2, 0.77, 1.0): standing-wave (modal) solutions with Dirichlet and Neumann walls,
and d'Alembert's solution for ``u0 = sin(2 pi x)^3`` with Dirichlet walls (c = 1, t = 0.1, 0.35, 0.9).
Space-time Stokes (``solve_stokes_dirichlet``, the generator's initial layer, 25 frames up to t = 1.2) against
``stokes_exact`` at the presets' viscosities, wall frequencies 2 and 8. Errors are maxima over all nodes and frames.

    OMP_NUM_THREADS=1 python -m experiments.datasets.validate_wave_stokes --out results/datasets/exact_errors.json
"""

from __future__ import annotations

import argparse

import numpy as np


from experiments.provenance import write_record
from boon_ext.datasets import (  # noqa: E402
    STOKES_PRESETS,
    solve_stokes_dirichlet,
    solve_wave,
    stokes_exact,
    stokes_layer,
)

GRIDS = (65, 129, 257, 513)


def orders(errs):
    e = np.asarray(errs)
    return np.log2(e[:-1] / e[1:]).tolist()


def wave_modal(walls):
    trig = np.sin if walls == "dirichlet" else np.cos
    t = np.array([0.2, 0.77, 1.0])
    errs = []
    for n in GRIDS:
        g = np.linspace(0, 1, n)
        u = solve_wave((trig(np.pi * g) + 0.5 * trig(3 * np.pi * g))[None], g, t, 1.3, walls)[0]
        exact = (trig(np.pi * g)[:, None] * np.cos(1.3 * np.pi * t)
                 + 0.5 * trig(3 * np.pi * g)[:, None] * np.cos(3.9 * np.pi * t))
        errs.append(float(np.abs(u - exact).max()))
    return errs


def wave_dalembert():
    f = lambda x: np.sin(2 * np.pi * x) ** 3  # noqa: E731
    t = np.array([0.1, 0.35, 0.9])
    errs = []
    for n in GRIDS:
        g = np.linspace(0, 1, n)
        u = solve_wave(f(g)[None], g, t, 1.0, "dirichlet")[0]
        errs.append(float(np.abs(u - 0.5 * (f(g[:, None] - t) + f(g[:, None] + t))).max()))
    return errs


def stokes(nu, w):
    times = 1.2 * np.arange(1, 26) / 25
    errs = []
    for n in GRIDS:
        g = np.linspace(0, 1, n)
        u0 = stokes_layer(g, 0.0, 1.0, w, nu)[None]
        u0[:, -1] = 0.0
        u = solve_stokes_dirichlet(u0, g, times, np.ones(1), np.array([w]), np.array([nu]))[0]
        errs.append(float(np.abs(u - stokes_exact(g, times, 1.0, w, nu)).max()))
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/datasets/exact_errors.json")
    args = ap.parse_args()
    cases = {"wave_dirichlet_modal": wave_modal("dirichlet"), "wave_neumann_modal": wave_modal("neumann"),
             "wave_dirichlet_dalembert": wave_dalembert()}
    for preset, kw in STOKES_PRESETS.items():
        for w in (2.0, 8.0):
            cases[f"stokes_{preset}_nu{kw['viscosity']}_w{w:g}"] = stokes(kw["viscosity"], w)
    record = {"grids": list(GRIDS), "cases": {k: {"max_abs_error": v, "observed_orders": orders(v)}
                                               for k, v in cases.items()}}
    print(f"{'case':36s} " + " ".join(f"{'N=' + str(n):>10s}" for n in GRIDS) + "   orders")
    for k, v in record["cases"].items():
        print(f"{k:36s} " + " ".join(f"{e:10.3e}" for e in v["max_abs_error"]) + "   "
              + " ".join(f"{o:.2f}" for o in v["observed_orders"]))
    write_record(args.out, record)


if __name__ == "__main__":
    main()
