"""Cost of the BOON correction: BOON-FNO against the plain FNO with the same weights, side by side.

For each configuration the plain model and its wrapped copy are timed in alternation (so both see the same
machine load), and the median over repetitions is reported with the ratio, for

* ``fwd``: inference (``torch.no_grad``): the weight-derived boundary blocks are cached per weight version;
* ``fwd (grad)``: a forward pass that builds the graph, as in training: the blocks are rebuilt from the weights;
* ``fwd+bwd``: a training step's forward and backward passes.

    python -m experiments.benchmark_boon            # full: 1-D, 2-D and space-time
    python -m experiments.benchmark_boon --quick    # fewer repetitions

Writes ``benchmark_boon.json`` and ``benchmark_boon.md`` to ``--out`` (default ``outputs/``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from neuralop.models import FNO

from boon_ext import BOONFNO, Dirichlet, Neumann, Periodic
from experiments.provenance import machine_description, machine_info

# The BOON configurations of experiments/reproduce_boon.py (whose default-selection rule reads these costs): the paper's
# kernel correction T2 in every layer (opt-in), T2 with the prescribed values written into every hidden layer's face
# nodes (the reference's per-layer T1; Dirichlet conditions only), output enforcement only (the default, for new
# models and for from_fno / from_checkpoint), and the smooth output lift over 4 nodes.
FULL_REPETITIONS = 15  # per pass and model; --quick takes 5
VARIANTS = {
    "T2": dict(kernel_correction=True),
    "T2 + values in every layer": dict(kernel_correction=True, hidden_values=True),
    "output only": dict(kernel_correction=False),
    "output lift": dict(kernel_correction=False, lift_width=4),
}


def applies(variant, boundary):
    """Whether ``variant`` is defined for ``boundary`` (values in the hidden layers: Dirichlet conditions only)."""
    if not VARIANTS[variant].get("hidden_values"):
        return True
    rules = boundary if isinstance(boundary, (list, tuple)) else [boundary]
    return all(isinstance(r, Dirichlet) for r in rules)


def configs():
    one_d = dict(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=64, n_layers=4)
    two_d = dict(n_modes=(16, 16), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4)
    space_time = dict(n_modes=(16, 12), in_channels=1, out_channels=1, hidden_channels=32, n_layers=4)
    walls = [Dirichlet(left=0.0, right=0.0, dim=-2), Dirichlet(left=0.0, right=1.0, dim=-1)]
    return [
        ("1-D Dirichlet", one_d, (32, 1, 256), dict(boundary=Dirichlet(left=0.0, right=1.0))),
        ("1-D Neumann", one_d, (32, 1, 256), dict(boundary=Neumann(left=0.0, right=1.0))),
        ("1-D periodic", one_d, (32, 1, 256), dict(boundary=Periodic())),
        ("1-D Dirichlet+Neumann", one_d, (32, 1, 256), dict(boundary=[Dirichlet(left=1.0), Neumann(right=0.0)])),
        ("2-D four Dirichlet walls", two_d, (8, 1, 64, 64), dict(boundary=walls)),
        ("space-time Dirichlet on x, t free", space_time, (8, 1, 128, 25),
         dict(boundary=Dirichlet(faces=["left", "right"], dim=-2), time_dim=-1)),
    ]


# "wall": elapsed time. "cpu": this process's CPU time, which does not count the time the scheduler gives other
# processes, so on a machine whose cores are shared with other jobs it tracks the work done (with 1 thread).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _time(fn, reps, clock=time.perf_counter):
    out = []
    for _ in range(reps):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def run(quick: bool, only=None, variants=tuple(VARIANTS), clock="wall"):
    tick = CLOCKS[clock]
    rows = []
    for (name, kw, shape, boon_kw), variant in itertools.product(configs(), variants):
        if (only and only not in name) or not applies(variant, boon_kw["boundary"]):
            continue
        torch.manual_seed(0)
        base = FNO(**kw)
        with warnings.catch_warnings():
            # random weights wrapped with T2 warn that the correction was not trained: expected here
            warnings.simplefilter("ignore")
            boon = BOONFNO.from_fno(base, **boon_kw, **VARIANTS[variant])
        x = torch.randn(*shape)
        values = {}
        for key in boon.boundary_spec.required_keys:
            face = [s for a, s in enumerate(shape[2:]) if a != boon.boundary_spec.rules[0].axis]
            values[key] = torch.randn(shape[0], 1, *face) if face else torch.randn(shape[0])
        calls = {"FNO": lambda: base(x), "BOON-FNO": lambda: boon(x, boundary_values=values)}

        def fwd(name):
            with torch.no_grad():
                calls[name]()

        def fwd_grad(name):
            calls[name]()

        def fwd_bwd(name, model):
            model.zero_grad(set_to_none=True)
            calls[name]().square().mean().backward()

        reps = 5 if quick else FULL_REPETITIONS
        for n in calls:  # warm-up
            fwd(n)
        t = {(m, k): [] for m in calls for k in ("fwd", "fwd (grad)", "fwd+bwd")}
        for _ in range(reps):  # alternate so both models see the same load
            t[("FNO", "fwd")] += _time(lambda: fwd("FNO"), 1, tick)
            t[("BOON-FNO", "fwd")] += _time(lambda: fwd("BOON-FNO"), 1, tick)
        for _ in range(reps):
            t[("FNO", "fwd (grad)")] += _time(lambda: fwd_grad("FNO"), 1, tick)
            t[("BOON-FNO", "fwd (grad)")] += _time(lambda: fwd_grad("BOON-FNO"), 1, tick)
        for _ in range(max(3, reps // 2)):
            t[("FNO", "fwd+bwd")] += _time(lambda: fwd_bwd("FNO", base), 1, tick)
            t[("BOON-FNO", "fwd+bwd")] += _time(lambda: fwd_bwd("BOON-FNO", boon), 1, tick)
        med = {k: statistics.median(v) for k, v in t.items()}
        rows.append(dict(
            config=name, variant=variant, input_shape=list(shape), modes=list(kw["n_modes"]), width=kw["hidden_channels"],
            fno_fwd_ms=1e3 * med[("FNO", "fwd")], boon_fwd_ms=1e3 * med[("BOON-FNO", "fwd")],
            fwd_ratio=med[("BOON-FNO", "fwd")] / med[("FNO", "fwd")],
            fno_fwd_grad_ms=1e3 * med[("FNO", "fwd (grad)")], boon_fwd_grad_ms=1e3 * med[("BOON-FNO", "fwd (grad)")],
            fwd_grad_ratio=med[("BOON-FNO", "fwd (grad)")] / med[("FNO", "fwd (grad)")],
            fno_fwd_bwd_ms=1e3 * med[("FNO", "fwd+bwd")], boon_fwd_bwd_ms=1e3 * med[("BOON-FNO", "fwd+bwd")],
            fwd_bwd_ratio=med[("BOON-FNO", "fwd+bwd")] / med[("FNO", "fwd+bwd")],
            repetitions=reps, clock=clock,
        ))
        print(f"{name + ', ' + variant:45s} fwd {rows[-1]['fno_fwd_ms']:8.1f} -> {rows[-1]['boon_fwd_ms']:8.1f} ms "
              f"(x{rows[-1]['fwd_ratio']:.2f})   fwd (grad) x{rows[-1]['fwd_grad_ratio']:.2f}   "
              f"fwd+bwd x{rows[-1]['fwd_bwd_ratio']:.2f}", flush=True)
    return rows


def markdown(rows, info, clock="wall"):
    what = "wall-clock" if clock == "wall" else "CPU time of this process (`--clock cpu`)"
    lines = [f"Machine: {machine_description(info)}. Median of alternating repetitions, {what}; same weights.", "",
             "| configuration | BOON variant | input | FNO fwd (ms) | BOON fwd (ms) | fwd ratio | fwd (grad) ratio | "
             "FNO fwd+bwd (ms) | BOON fwd+bwd (ms) | fwd+bwd ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['variant']} | {'x'.join(map(str, r['input_shape']))} | {r['fno_fwd_ms']:.1f} | "
                     f"{r['boon_fwd_ms']:.1f} | {r['fwd_ratio']:.2f} | {r['fwd_grad_ratio']:.2f} | "
                     f"{r['fno_fwd_bwd_ms']:.1f} | {r['boon_fwd_bwd_ms']:.1f} | {r['fwd_bwd_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--only", default=None, help="run the configurations whose name contains this text")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--out", default="outputs", help="output folder")
    p.add_argument("--clock", default="wall", choices=sorted(CLOCKS),
                   help="wall: elapsed time; cpu: this process's CPU time (for a machine shared with other jobs)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: stable timings on a small, shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine_info()
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants must name variants among {list(VARIANTS)}, got {v!r}")
    rows = run(args.quick, args.only, variants, args.clock)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark_boon.json").write_text(json.dumps({"machine": info, "clock": args.clock, "results": rows},
                                                        indent=2))
    table = markdown(rows, info, args.clock)
    (out / "benchmark_boon.md").write_text(table)
    print("\n" + table)
    print(f"wrote {out / 'benchmark_boon.json'} and {out / 'benchmark_boon.md'}")


if __name__ == "__main__":
    main()
