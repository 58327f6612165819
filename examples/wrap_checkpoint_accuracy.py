"""Does wrapping a trained FNO with BOON cost accuracy? Measured per enforcement mechanism, and fine-tuning.

A plain neuralop FNO is trained (Adam, relative L2 loss) on a generated problem and then wrapped, without
retraining, by ``BOONFNO.from_fno`` with each mechanism:

* ``kernel``    -- the per-layer kernel correction (T2) plus exact output enforcement (``kernel_correction=True``);
* ``overwrite`` -- output enforcement only, the face nodes overwritten (``kernel_correction=False``);
* ``lift{w}``   -- output enforcement only, the boundary residual spread over ``w`` nodes by a smooth lift
                   (``kernel_correction=False, lift_width=w``).

For each problem and seed it reports the relative L2 error over the whole grid and over the interior (every
node except those on a constrained face) and the largest boundary-condition violation. With ``--finetune``
it also fine-tunes the ``kernel`` wrapping with :func:`boon_ext.finetune_kernel_correction` and records, per
epoch, the interior error, to count the epochs needed to get back to the plain model's accuracy.

    python examples/wrap_checkpoint_accuracy.py                   # table, about 3 minutes on 2 CPU cores
    python examples/wrap_checkpoint_accuracy.py --finetune heat stokes --finetune-epochs 10
    python examples/wrap_checkpoint_accuracy.py --quick           # smoke size

Prints markdown tables (median and min..max over seeds) and writes ``wrap_accuracy.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from neuralop.losses import LpLoss
from neuralop.models import FNO

from boon_ext import BOONFNO, BoundaryAccuracyWarning, boundary_error, finetune_kernel_correction
from boon_ext.datasets import burgers_dirichlet, burgers_periodic, heat_neumann, stokes_second_problem

PROBLEMS = {
    # name: (generator, kwargs, condition kind)
    "heat": (heat_neumann, dict(flux_amplitude=(0.5, 2.0)), "Neumann"),
    "stokes": (stokes_second_problem, dict(viscosity=0.01), "Dirichlet"),
    "burgers_dirichlet": (burgers_dirichlet, dict(), "Dirichlet"),
    "burgers_periodic": (burgers_periodic, dict(), "periodic"),
    "stokes_spacetime": (stokes_second_problem, dict(viscosity=0.01), "Dirichlet, 2-D space-time"),
}
SIZES = {
    "full": dict(n_train=200, n_test=50, n_points=129, n_times=16, epochs=20, batch=10, lr=3e-3,
                 arch=dict(n_modes=(16,), hidden_channels=32, n_layers=4), arch_st=dict(n_modes=(12, 8),
                 hidden_channels=24, n_layers=4)),
    "quick": dict(n_train=32, n_test=16, n_points=33, n_times=8, epochs=3, batch=8, lr=3e-3,
                  arch=dict(n_modes=(8,), hidden_channels=8, n_layers=2), arch_st=dict(n_modes=(6, 4),
                  hidden_channels=8, n_layers=2)),
}


def make_problem(name, size, seed):
    gen, kwargs, _ = PROBLEMS[name]
    total = size["n_train"] + size["n_test"]
    if name == "stokes_spacetime":
        kwargs = dict(kwargs, n_times=size["n_times"], n_points=size["n_points"] // 2 + 1)
    else:
        kwargs = dict(kwargs, n_points=size["n_points"])
    return gen(total, seed=seed, **kwargs)


def batches(problem, idx, batch, gen):
    perm = idx[torch.randperm(len(idx), generator=gen)]
    for i in range(0, len(perm), batch):
        j = perm[i: i + batch]
        yield {"x": problem.x[j], "y": problem.y[j],
               "boundary_values": {k: v[j] for k, v in problem.boundary_values.items()}}


def train_plain(problem, size, seed):
    """A plain FNO trained with Adam (step decay) on the relative L2 loss."""
    torch.manual_seed(seed)
    arch = size["arch_st"] if problem.x.ndim == 4 else size["arch"]
    model = FNO(in_channels=1, out_channels=1, **arch)
    opt = torch.optim.Adam(model.parameters(), lr=size["lr"], weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, size["epochs"] // 3), gamma=0.5)
    loss_fn = LpLoss(d=problem.x.ndim - 2, p=2)
    gen = torch.Generator().manual_seed(seed)
    idx = torch.arange(size["n_train"])
    for _ in range(size["epochs"]):
        for b in batches(problem, idx, size["batch"], gen):
            loss = loss_fn(model(b["x"]), b["y"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    return model.eval()


def interior_mask(problem):
    """True on every node that is not on a constrained face (the spatial axis is dim 2)."""
    n = problem.x.shape[2]
    m = torch.ones(n, dtype=torch.bool)
    m[0] = m[-1] = False
    return m.view(1, 1, n, *([1] * (problem.x.ndim - 3)))


def rel_l2(pred, y, mask=None):
    d, t = (pred - y).double(), y.double()
    if mask is not None:
        d, t = d * mask, t * mask
    return float((d.flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1).clamp_min(1e-30)).mean())


@torch.no_grad()
def evaluate(model, problem, test_idx, wrapped):
    model.eval()
    x, y = problem.x[test_idx], problem.y[test_idx]
    bv = {k: v[test_idx] for k, v in problem.boundary_values.items()}
    pred = model(x, boundary_values=bv) if wrapped else model(x)
    time_dim = -1 if problem.x.ndim == 4 else None
    return {"full": rel_l2(pred, y), "interior": rel_l2(pred, y, interior_mask(problem)),
            "boundary_error": float(boundary_error(pred, problem.boundary, bv, time_dim=time_dim))}


def wrap(fno, problem, mechanism):
    time_dim = -1 if problem.x.ndim == 4 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoundaryAccuracyWarning)  # measuring the very case it warns about
        if mechanism == "kernel":
            return BOONFNO.from_fno(fno, problem.boundary, kernel_correction=True, lift_width=None,
                                    time_dim=time_dim)
        if mechanism == "overwrite":
            return BOONFNO.from_fno(fno, problem.boundary, lift_width=None, time_dim=time_dim)
        return BOONFNO.from_fno(fno, problem.boundary, lift_width=int(mechanism[4:]), time_dim=time_dim)


def summarize(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problems", nargs="*", default=["heat", "stokes", "burgers_dirichlet", "burgers_periodic",
                                                     "stokes_spacetime"],
                   help=f"problems to measure, of {list(PROBLEMS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--mechanisms", nargs="+", default=["kernel", "overwrite", "lift2", "lift4", "lift8"])
    p.add_argument("--finetune", nargs="*", default=[], choices=list(PROBLEMS),
                   help="problems on which to fine-tune the kernel-corrected wrapping, epoch by epoch")
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--no-table", action="store_true", help="only the fine-tuning runs")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default="outputs/wrap_accuracy")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    unknown = [n for n in args.problems if n not in PROBLEMS]
    if unknown:
        p.error(f"unknown problems {unknown}; choose from {list(PROBLEMS)}")
    torch.set_num_threads(args.threads)
    size = SIZES["quick" if args.quick else "full"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.no_table:
        args.problems = []
    mechanisms = ["plain"] + args.mechanisms
    runs = {}
    finetune = {}
    t0 = time.perf_counter()
    for name in dict.fromkeys(args.problems + args.finetune):
        problem = make_problem(name, size, seed=0)
        test_idx = torch.arange(size["n_train"], size["n_train"] + size["n_test"])
        for seed in args.seeds:
            fno = train_plain(problem, size, seed)
            if name in args.problems:
                runs.setdefault(name, {}).setdefault("plain", []).append(evaluate(fno, problem, test_idx, False))
                for mech in args.mechanisms:
                    r = evaluate(wrap(copy.deepcopy(fno), problem, mech), problem, test_idx, True)
                    runs[name].setdefault(mech, []).append(r)
            if name in args.finetune:
                model = wrap(copy.deepcopy(fno), problem, "kernel")
                plain = evaluate(fno, problem, test_idx, False)["interior"]
                curve = [evaluate(model, problem, test_idx, True)["interior"]]
                train_ds = problem.dataset(range(size["n_train"]))
                loader = torch.utils.data.DataLoader(train_ds, batch_size=size["batch"], shuffle=True,
                                                     generator=torch.Generator().manual_seed(seed))
                for _ in range(args.finetune_epochs):
                    finetune_kernel_correction(model, loader, epochs=1, lr=1e-3, progress=False)
                    curve.append(evaluate(model, problem, test_idx, True)["interior"])
                reached = next((e for e, v in enumerate(curve) if v <= plain), None)
                finetune.setdefault(name, []).append({"seed": seed, "plain_interior": plain, "curve": curve,
                                                      "epochs_to_plain": reached})
            print(f"[{time.perf_counter() - t0:6.0f} s] {name} seed {seed} done", flush=True)

    summary = {name: {m: {k: summarize([r[k] for r in rs]) for k in ("full", "interior", "boundary_error")}
                      for m, rs in per.items()} for name, per in runs.items()}
    if summary:
        print("\nRelative L2 error on the test set, median [min..max] over seeds "
              f"{args.seeds}; interior = all nodes except the constrained faces.\n")
        print("| problem | " + " | ".join(f"{m} interior | {m} full" for m in mechanisms) + " |")
        print("|---|" + "---:|---:|" * len(mechanisms))
        for name, per in summary.items():
            cells = []
            for m in mechanisms:
                for k in ("interior", "full"):
                    s = per[m][k]
                    cells.append(f"{s['median']:.4f} [{s['min']:.4f}..{s['max']:.4f}]")
            print(f"| {name} ({PROBLEMS[name][2]}) | " + " | ".join(cells) + " |")
        print("\nLargest boundary-condition violation (max over seeds):")
        for name, per in summary.items():
            print(f"  {name}: " + ", ".join(f"{m} {per[m]['boundary_error']['max']:.1e}" for m in mechanisms))
    for name, rs in finetune.items():
        print(f"\nfine-tuning the kernel-corrected wrapping on {name} (lr 1e-3): interior rel. L2 per epoch")
        for r in rs:
            print(f"  seed {r['seed']}: plain {r['plain_interior']:.4f}; "
                  + " ".join(f"{v:.4f}" for v in r["curve"]) + f" -> epochs to plain: {r['epochs_to_plain']}")
    (out / "wrap_accuracy.json").write_text(json.dumps(
        {"size": {k: v for k, v in size.items()}, "seeds": args.seeds, "runs": runs, "summary": summary,
         "finetune": finetune}, indent=2, default=str))
    print(f"\nwrote {out / 'wrap_accuracy.json'}")


if __name__ == "__main__":
    main()
