"""Wrap a trained neuralop checkpoint with exact boundary conditions, without retraining.

A plain FNO is trained on a generated heat problem (insulated left end, prescribed heat
flux at the right end) and saved with neuralop's ``save_checkpoint``, as any neuralop user has it. The checkpoint is
then loaded by ``BOONFNO.from_checkpoint`` with the problem's two Neumann conditions: the wrapped model satisfies
them exactly, and its predictions away from the two end nodes are the FNO's own, so its interior error is unchanged.

    python examples/wrap_checkpoint.py            # about 10 s of CPU time
    python examples/wrap_checkpoint.py --quick    # a few seconds

Prints the relative L2 error and the flux error of the FNO and of the wrapped model; the checkpoint is written to
``--out`` (default outputs/wrap_checkpoint).
"""

import argparse
from pathlib import Path

import torch
from neuralop.losses import LpLoss
from neuralop.models import FNO

from boon_ext import BOONFNO, boundary_error
from boon_ext.datasets import heat_neumann


def relative_l2(u, y):
    return float(((u - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="less data and fewer epochs (smoke test)")
    parser.add_argument("--out", default="outputs/wrap_checkpoint", help="folder for the checkpoint")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    n_train, n_test, epochs = (32, 16, 2) if args.quick else (200, 50, 20)
    problem = heat_neumann(n_train + n_test, n_points=65, t_final=0.2, diffusivity=0.1, flux_amplitude=(0.5, 2.0),
                           seed=0)

    # 1. Train a plain FNO as usual (it never sees the boundary values) and save it as neuralop does.
    fno = FNO(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=32)
    optimizer, loss = torch.optim.Adam(fno.parameters(), lr=3e-3), LpLoss(d=1)
    for _ in range(epochs):
        for batch in torch.randperm(n_train).split(16):
            optimizer.zero_grad()
            loss(fno(problem.x[batch]), problem.y[batch]).backward()
            optimizer.step()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fno.save_checkpoint(out, "fno")

    # 2. Wrap the checkpoint with the problem's conditions: no retraining, the weights are loaded as they are.
    model = BOONFNO.from_checkpoint(out, "fno", boundary=problem.boundary)
    test = slice(n_train, n_train + n_test)
    x, y = problem.x[test], problem.y[test]
    values = {key: v[test] for key, v in problem.boundary_values.items()}
    fno.eval(), model.eval()
    with torch.no_grad():
        pred = {"FNO": fno(x), "FNO wrapped by BOON": model(x, boundary_values=values)}
    print(f"conditions: {model.boundary}")
    print("| model | rel. L2 | rel. L2 interior | max flux error |\n|---|---:|---:|---:|")
    for name, u in pred.items():
        print(f"| {name} | {relative_l2(u, y):.4f} | {relative_l2(u[..., 1:-1], y[..., 1:-1]):.4f} | "
              f"{float(boundary_error(u, problem.boundary, values)):.2e} |")
    return pred, y, values, problem.boundary


if __name__ == "__main__":
    main()
