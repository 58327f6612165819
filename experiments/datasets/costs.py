"""Cost of the hard-regime data sets: generation time and single-thread FNO seconds per epoch at proposed sizes.

For each proposed problem it generates a few samples with the package's generator (timed; the solvers are batched
and linear in the number of samples, so the time for the full set is extrapolated, and said to be), then times
optimizer steps (forward, backward, Adam) of neuralop's FNO at the proposed architecture and batch, and of BOON's
output-only enforcement (``BOONFNO(kernel_correction=False)``) on the same batches, and extrapolates one epoch:
``n_train / batch`` steps plus the forward passes over the validation and test sets.

    OMP_NUM_THREADS=1 python -m experiments.datasets.costs --out results/datasets/costs.json

Timings are the process's CPU seconds with one torch thread (the median of ``--steps`` steps): on a shared machine
wall-clock time also counts other processes' turns on the core. The JSON records the load average. No timing is
asserted anywhere: this is a planning tool.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


from experiments.provenance import machine_info, write_record  # noqa: E402
from boon_ext.datasets import (  # noqa: E402
    burgers_dirichlet,
    heat_neumann,
    heat_neumann_preset,
    lid_driven_cavity,
    stokes_spacetime,
    wave_equation,
)

# Proposed campaign sizes: (generator, its kwargs, n_train, n_val, n_test, batch, FNO kwargs, order_by).
ST_ARCH = dict(n_modes=(16, 13), hidden_channels=32, n_layers=4)  # 8 Fourier modes in space, 7 in time
PROPOSED = {
    # The converged 1-D campaign's heat problem and FNO, for calibration: it trained at 5.1-7.3 s per epoch
    # (results/boon_full/results.json, FNO, 3 seeds) on a shared 2-core VM like this one.
    "calibration_heat_501": (heat_neumann, dict(n_points=501), 500, 100, 100, 20,
                             dict(n_modes=(31,), hidden_channels=64, n_layers=4), None),
    "heat_reference": (heat_neumann_preset, dict(n_points=257), 500, 100, 100, 20,
                       dict(n_modes=(32,), hidden_channels=64, n_layers=4), "ic_frequency"),
    "burgers_dirichlet_walls": (burgers_dirichlet, dict(n_points=257, left=(-1.0, 1.0), right=(-1.0, 1.0)),
                                500, 100, 100, 20, dict(n_modes=(32,), hidden_channels=64, n_layers=4), "left"),
    # N = 129: the thin layer (0.035-0.071 thick) spans 4.5-9 cells (2.2-4.5 at N = 65).
    "stokes_thin_layer": (stokes_spacetime, dict(preset="thin_layer", n_points=129), 200, 50, 100, 20,
                          dict(n_modes=(32, 13), hidden_channels=32, n_layers=4), "frequency"),
    "stokes_reference": (stokes_spacetime, dict(preset="reference", n_points=65), 300, 50, 100, 20, ST_ARCH,
                         "frequency"),
    "wave_neumann": (wave_equation, dict(n_points=65, walls="neumann", n_times=25), 300, 50, 100, 20, ST_ARCH, None),
    "cavity": (lid_driven_cavity, dict(n_points=17, n_times=25, t_final=2.0, refine=4), 200, 50, 100, 10,
               dict(n_modes=(8, 8, 13), hidden_channels=20, n_layers=4), "lid_speed"),
}


def time_generator(gen, kwargs, n):
    t0 = time.process_time()
    p = gen(n, seed=123, **kwargs)
    return p, time.process_time() - t0


def time_steps(model, x, y, bv, steps):
    """Median seconds per optimizer step and per forward pass, in this process's CPU time.

    With one thread, CPU time is the work itself: on a shared machine the wall-clock time also counts the
    time other processes hold the core (measured here: up to 2x, and model ratios from 0.5 to 1.6).
    """
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def loss_of(out):
        diff = (out - y).flatten(1).norm(dim=1)
        return (diff / y.flatten(1).norm(dim=1)).mean()

    def step():
        opt.zero_grad()
        out = model(x) if bv is None else model(x, boundary_values=bv)
        loss_of(out).backward()
        opt.step()

    def fwd():
        with torch.no_grad():
            model(x) if bv is None else model(x, boundary_values=bv)

    def median(fn):
        ts = []
        for _ in range(steps):
            t0 = time.process_time()
            fn()
            ts.append(time.process_time() - t0)
        return float(np.median(ts))

    step()  # warm-up
    return median(step), median(fwd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/datasets/costs.json")
    ap.add_argument("--problems", nargs="+", default=list(PROPOSED))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-boon", action="store_true", help="time the FNO only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from neuralop.models import FNO

    from boon_ext import BOONFNO

    rows = {}
    for name in args.problems:
        gen, kwargs, n_train, n_val, n_test, batch, arch, order_by = PROPOSED[name]
        p, t_gen = time_generator(gen, kwargs, batch)
        n_all = n_train + n_val + n_test
        gen_full = t_gen * n_all / batch
        x, y = p.x[:batch], p.y[:batch]
        bv = {k: v[:batch] for k, v in p.boundary_values.items()} or None
        c = x.shape[1]
        torch.manual_seed(0)
        fno = FNO(in_channels=c, out_channels=c, **arch)
        t_step, t_fwd = time_steps(fno, x, y, None, args.steps)
        epoch = (n_train / batch) * t_step + ((n_val + n_test) / batch) * t_fwd
        row = dict(shape=list(p.x.shape[1:]), n_train=n_train, n_val=n_val, n_test=n_test, batch=batch, arch=arch,
                   order_by=order_by, generate_s_per_sample=t_gen / batch, generate_full_s_extrapolated=gen_full,
                   fno_step_s=t_step, fno_forward_s=t_fwd, fno_epoch_s=epoch,
                   fno_params=sum(q.numel() for q in fno.parameters()))
        if not args.no_boon:
            time_dim = -1 if p.x.ndim >= 4 else None
            torch.manual_seed(0)
            boon = BOONFNO(boundary=p.boundary, time_dim=time_dim, kernel_correction=False, in_channels=c,
                           out_channels=c, **arch)
            b_step, b_fwd = time_steps(boon, x, y, bv, args.steps)
            row.update(boon_output_step_s=b_step, boon_output_epoch_s=(n_train / batch) * b_step
                       + ((n_val + n_test) / batch) * b_fwd, boon_output_ratio=b_step / t_step)
        rows[name] = row
        print(f"{name:24s} shape {tuple(p.x.shape[1:])}  generate {t_gen / batch * 1e3:8.1f} ms/sample "
              f"(full {n_all}: ~{gen_full:6.0f} s)  FNO step {t_step:6.3f} s  epoch {epoch:6.1f} s"
              + ("" if args.no_boon else f"  BOON output/FNO {row['boon_output_ratio']:.2f}"), flush=True)
    record = {"machine": machine_info(), "threads": torch.get_num_threads(),
              "clock": "process CPU time",
              "load_average": os.getloadavg(), "steps_timed": args.steps, "problems": rows}
    write_record(args.out, record)


if __name__ == "__main__":
    main()
