"""Constant boundary conditions in physical units, through neuralop's Trainer with an output normaliser.

A BOON model is trained for a few steps in neuralop's ``Trainer`` with :class:`~boon_ext.BoundaryDataProcessor`
and one of neuralop's normalisers; then a batch goes through ``preprocess`` -> model -> ``postprocess`` (eval
mode, so the output is inverse-transformed to physical units), and each condition is measured on that physical
output: ``u`` at a Dirichlet face, the condition's one-sided ``du/dx`` at a Neumann face, ``u(left) - u(right)``
for a periodic pair.

Run as a script to print the table (and, with ``--json PATH``, write it)::

    PYTHONPATH=. python tests/adversarial/physical_units_table.py

``test_boon_physical_units.py`` runs :func:`measure` and checks every row.
"""

from __future__ import annotations

import argparse
import json
import warnings

import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer
from neuralop.losses import LpLoss
from neuralop.training import Trainer

from boon_ext import BOONFNO, BoundaryDataProcessor, Dirichlet, Neumann, Periodic, TargetLoss, one_sided_derivative

N_NODES, N_SAMPLES, DOMAIN = 32, 16, (0.0, 2.0)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def _data(channels: int, periodic: bool, offset: float, scale: float, seed: int = 0):
    """Smooth fields of mean about ``offset`` and spread about ``scale`` (physical units)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 1.0, N_NODES)
    a = torch.randn(N_SAMPLES, channels, 1, generator=g)
    b = torch.randn(N_SAMPLES, channels, 1, generator=g)
    shape = torch.cos(2 * torch.pi * t) if periodic else torch.sin(2.0 * t)
    x = (a * shape + b)[:, :1]
    y = offset + scale * (a * shape + 0.5 * b)
    return x, y


def _normalizer(kind: str, y: torch.Tensor):
    if kind == "scalar":  # one mean and std for everything
        n = UnitGaussianNormalizer(dim=[0, 1, 2])
    elif kind == "per-channel":
        n = UnitGaussianNormalizer(dim=[0, 2])
    elif kind == "per-node":  # statistics vary along the axis (and so along a Neumann stencil)
        n = UnitGaussianNormalizer(dim=[0])
    else:
        raise ValueError(kind)
    n.fit(y)
    return n


CASES = [
    # (label, conditions, out_channels, normaliser, periodic data, offset, scale)
    ("Dirichlet(left=1.0), Neumann(right=0.5)", [Dirichlet(left=1.0), Neumann(right=0.5, domain=DOMAIN)], 1,
     "scalar", False, 12.0, 3.0),
    ("Dirichlet(right=1.0), Neumann(left=0.5)", [Dirichlet(right=1.0), Neumann(left=0.5, domain=DOMAIN)], 1,
     "per-channel", False, -7.0, 0.25),
    ("Dirichlet(left=[1.0, -2.0], right=0.0)", [Dirichlet(left=[1.0, -2.0], right=0.0)], 2, "per-channel", False,
     5.0, 4.0),
    ("Dirichlet(left=1.0, right=-1.0)", [Dirichlet(left=1.0, right=-1.0)], 1, "per-node", False, 3.0, 2.0),
    ("Neumann(left=-0.5, right=[0.5, 2.0], order=1)",
     [Neumann(left=-0.5, right=[0.5, 2.0], order=1, domain=DOMAIN)], 2, "per-channel", False, 10.0, 0.5),
    ("Periodic()", [Periodic()], 1, "per-node", True, 4.0, 2.0),
    # A std that varies along the Neumann stencil: no Neumann condition on the normalised output expresses it.
    ("Neumann(right=0.5)", [Neumann(right=0.5, domain=DOMAIN)], 1, "per-node", False, 3.0, 2.0),
]
# The cases that must be refused (the last one).
REFUSED = {("Neumann(right=0.5)", "per-node")}


def _measure_case(conditions, out_channels, kind, periodic, offset, scale, steps, seed):
    torch.manual_seed(seed)
    x, y = _data(out_channels, periodic, offset, scale, seed)
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=out_channels, hidden_channels=8, n_layers=2,
                    boundary=conditions)
    processor = BoundaryDataProcessor(None, _normalizer(kind, y), boundary=model.boundary_spec)
    loader = torch.utils.data.DataLoader(_Samples(x, y), batch_size=N_SAMPLES // steps)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model=model, n_epochs=1, data_processor=processor, verbose=False, device="cpu",
                      eval_interval=1)
    loss = TargetLoss(LpLoss(d=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neuralop's own notices about the training run
        trainer.train(loader, {}, opt, torch.optim.lr_scheduler.StepLR(opt, 100), training_loss=loss,
                      eval_losses={})
    model.eval()
    processor.eval()
    with torch.no_grad():
        sample = processor.preprocess({"x": x.clone(), "y": y.clone()})
        out, _ = processor.postprocess(model(**sample), sample)
    h = (DOMAIN[1] - DOMAIN[0]) / (N_NODES - 1)
    rows = []
    for rule in model.boundary_spec.rules:
        chans = list(rule.channels or range(out_channels))
        if rule.kind == "periodic":
            if rule.side == "right":
                continue
            measured = out[:, chans, 0] - out[:, chans, -1]
            target = torch.zeros_like(measured)
            what = "u(left) - u(right)"
        else:
            target = torch.tensor(rule.constant, dtype=out.dtype).expand(out.shape[0], len(chans))
            if rule.kind == "dirichlet":
                measured = out[:, chans, rule.index]
                what = f"u({rule.side})"
            else:
                h = (rule.domain[1] - rule.domain[0]) / (N_NODES - 1)
                measured = one_sided_derivative(out[:, chans], rule.side, h, order=rule.order)
                what = f"du/dx({rule.side})"
        for j, c in enumerate(chans):
            err = (measured[:, j] - target[:, j]).abs().max()
            rows.append(dict(quantity=what + (f" ch{c}" if out_channels > 1 else ""), target=float(target[0, j]),
                             measured=float(measured[:, j].mean()), max_error=float(err),
                             field_scale=float(out.abs().max())))
    return rows


def measure(steps: int = 2, seed: int = 0):
    """Rows ``{condition, normaliser, quantity, target, measured, max_error, field_scale}``, one per face and channel.

    Parameters
    ----------
    steps : int
        Training steps (batches) in the Trainer's one epoch.
    seed : int
    """
    table = []
    for label, conditions, out_channels, kind, periodic, offset, scale in CASES:
        try:
            rows = _measure_case(conditions, out_channels, kind, periodic, offset, scale, steps, seed)
        except ValueError as err:  # a refusal is a result too
            rows = [dict(quantity="refused", target=float("nan"), measured=float("nan"), max_error=float("nan"),
                         field_scale=float("nan"), error=str(err))]
        for r in rows:
            table.append(dict(condition=label, normaliser=kind, **r))
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.steps)
    print("| condition | normaliser | quantity | target | measured (physical) | max abs error |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['condition']} | {r['normaliser']} | ValueError: {r['error'][:60]}... | | | |")
            continue
        print(f"| {r['condition']} | {r['normaliser']} | {r['quantity']} | {r['target']:.4g} | {r['measured']:.6g} | "
              f"{r['max_error']:.2e} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
