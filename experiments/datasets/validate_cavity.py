"""Validate the lid-driven cavity solver: Ghia, Ghia & Shin (1982) profiles and a grid-convergence study.

Runs ``solve_cavity_steady`` to steady state at Re = 100, 400, 1000 on a 129 x 129 grid and compares the
centreline profiles with the published values at the published points (cubic-spline interpolation of the
profile through the grid nodes; the 129-node grid holds every published point as a node), then runs Re = 100 on
33, 65 and 129 nodes and reports the observed orders of convergence at the nodes the grids share. Prints tables
and writes JSON.

    OMP_NUM_THREADS=1 python -m experiments.datasets.validate_cavity --out results/datasets/cavity_validation.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import CubicSpline

ROOT = Path(__file__).resolve().parents[2]

from experiments.launch import parse_device  # noqa: E402
from experiments.provenance import machine_info, write_record  # noqa: E402
from boon_ext.datasets import solve_cavity_steady  # noqa: E402
from experiments.datasets import ghia1982  # noqa: E402


def centrelines(sol):
    x = sol["x"].numpy()
    c = (x.size - 1) // 2
    return x, sol["u"].numpy()[c, :], sol["v"].numpy()[:, c]


def ghia_table(sol, re):
    x, u_line, v_line = centrelines(sol)
    u = CubicSpline(x, u_line)(np.array(ghia1982.Y))
    v = CubicSpline(x, v_line)(np.array(ghia1982.X))
    du = u - np.array(ghia1982.U[re])
    dv = v - np.array(ghia1982.V[re])
    keep = np.ones(dv.size, bool)
    keep[list(ghia1982.SUSPECT_V.get(re, ()))] = False
    return {
        "y": list(ghia1982.Y), "u": u.tolist(), "u_ghia": list(ghia1982.U[re]),
        "x": list(ghia1982.X), "v": v.tolist(), "v_ghia": list(ghia1982.V[re]),
        "max_abs_diff_u": float(np.abs(du).max()), "max_abs_diff_v": float(np.abs(dv[keep]).max()),
        "excluded_v_points": [ghia1982.X[i] for i in ghia1982.SUSPECT_V.get(re, ())],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/datasets/cavity_validation.json")
    ap.add_argument("--reynolds", type=float, nargs="+", default=[100, 400, 1000])
    ap.add_argument("--n-points", type=int, default=129)
    ap.add_argument("--grids", type=int, nargs="+", default=[33, 65, 129])
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    try:
        parse_device(args.device)
    except ValueError as err:
        ap.error(str(err))
    torch.set_num_threads(1)
    record = {"machine": machine_info(), "device": args.device, "tol": args.tol,
              "ghia": {}, "convergence": {}}
    solutions = {}
    for re in args.reynolds:
        t0 = time.perf_counter()
        sol = solve_cavity_steady(re, args.n_points, tol=args.tol, device=args.device)
        sol = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in sol.items()}
        seconds = time.perf_counter() - t0
        tab = ghia_table(sol, int(re))
        tab.update(n_points=args.n_points, steady_time=sol["time"], steps=sol["steps"], seconds=seconds,
                   psi_min=float(sol["psi"].min()))
        record["ghia"][str(int(re))] = tab
        if int(re) == 100:
            solutions[args.n_points] = sol
        print(f"\nRe = {int(re)}, N = {args.n_points}: steady at t = {sol['time']:.1f} ({sol['steps']} steps, "
              f"{seconds:.0f} s), psi_min = {tab['psi_min']:.5f}")
        print(f"{'y':>7} {'u':>9} {'Ghia u':>9} {'diff':>9} | {'x':>7} {'v':>9} {'Ghia v':>9} {'diff':>9}")
        for k in range(len(tab["y"])):
            mark = " *" if tab["x"][k] in tab["excluded_v_points"] else ""
            u, ug, v, vg = tab["u"][k], tab["u_ghia"][k], tab["v"][k], tab["v_ghia"][k]
            print(f"{tab['y'][k]:7.4f} {u:9.5f} {ug:9.5f} {u - ug:9.5f} | {tab['x'][k]:7.4f} {v:9.5f} {vg:9.5f} "
                  f"{v - vg:9.5f}{mark}")
        print(f"max |diff|: u {tab['max_abs_diff_u']:.5f}, v {tab['max_abs_diff_v']:.5f}"
              + (" (* excluded: misprint in Table II)" if tab["excluded_v_points"] else ""))
    # Grid convergence at Re = 100: differences of successive grids at the coarsest grid's centreline nodes.
    for n in args.grids:
        if n not in solutions:
            t0 = time.perf_counter()
            solutions[n] = solve_cavity_steady(100, n, tol=args.tol, device=args.device)
            solutions[n] = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in solutions[n].items()}
            print(f"Re = 100, N = {n}: {time.perf_counter() - t0:.0f} s")
    coarse = min(args.grids)
    lines = {}
    for n in sorted(args.grids):
        x, u, v = centrelines(solutions[n])
        stride = (n - 1) // (coarse - 1)
        lines[n] = (u[::stride], v[::stride], float(solutions[n]["psi"][(n - 1) // 2, (n - 1) // 2]))
    grids = sorted(args.grids)
    diffs = {"u": [], "v": [], "psi_centre": []}
    for a, b in zip(grids[:-1], grids[1:]):
        diffs["u"].append(float(np.abs(lines[a][0] - lines[b][0]).max()))
        diffs["v"].append(float(np.abs(lines[a][1] - lines[b][1]).max()))
        diffs["psi_centre"].append(abs(lines[a][2] - lines[b][2]))
    orders = {k: [float(np.log(d[i] / d[i + 1]) / np.log(2)) for i in range(len(d) - 1)] for k, d in diffs.items()}
    record["convergence"] = {"reynolds": 100, "grids": grids, "successive_max_diffs": diffs, "observed_orders": orders}
    print(f"\nGrid convergence, Re = 100, grids {grids}: successive max differences at the {coarse}-node "
          "centreline nodes")
    for k in diffs:
        print(f"  {k:10s} diffs {['%.2e' % d for d in diffs[k]]}  observed order {['%.2f' % o for o in orders[k]]}")
    write_record(args.out, record)


if __name__ == "__main__":
    main()
