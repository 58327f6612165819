"""What the operator cache saves in BOON inference, and what making it safe costs.

Under ``torch.no_grad()`` a BOON model reuses each layer's weight-derived operators (spectral plan, skip matrix,
factorised face blocks) while the layer is unchanged, which it checks by comparing the weights byte for byte
with a snapshot (see ``boon_ext.blocks``). This script times, side by side in one run, a no-grad forward pass

* with the cache (the default: the check plus the cached operators),
* without the cache (the operators rebuilt on every call),
* and the check alone (the byte comparison of every layer's weights, the price of never being stale),

on the 1-D setting of the paper (width 64, 16 modes, batch 32, 256 nodes, Dirichlet) and on a 2-D model with
Dirichlet conditions on all four walls (width 32, 16x16 modes, batch 8, 64x64).

    python -m experiments.benchmark_boon_cache [--repeats 20] [--out outputs/benchmark_boon_cache.json]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from boon_ext import BOONFNO, Dirichlet
from boon_ext.blocks import _bits

from experiments.bench import median_ms, write_json

warnings.filterwarnings("ignore", category=UserWarning)




def _case(name, model, x, repeats):
    model.eval()
    cache = model._operator_cache

    def cached():
        model._operator_cache = cache
        with torch.no_grad():
            model(x)

    def uncached():
        model._operator_cache = None  # forward then passes no cache at all
        with torch.no_grad():
            model(x)

    params = [list(c.parameters()) + (list(s.parameters()) if s is not None else [])
              for c, s in zip(model.fno_blocks.convs, model.fno_blocks.fno_skips or [None] * model.n_layers)]
    snaps = [[_bits(p).clone() for p in ps] for ps in params]

    def check():
        for snap, ps in zip(snaps, params):
            all(torch.equal(s, _bits(p)) for s, p in zip(snap, ps))

    row = {"case": name, "cached_ms": median_ms(cached, repeats), "uncached_ms": median_ms(uncached, repeats),
           "check_ms": median_ms(check, repeats)}
    model._operator_cache = cache
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default="outputs/benchmark_boon_cache.json", help="JSON file for the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    m1 = BOONFNO(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=64, kernel_correction=True,
                 boundary=Dirichlet(left=0.0, right=1.0))
    rows.append(_case("1-D w64 m16 b32 n256", m1, torch.randn(32, 1, 256), args.repeats))
    walls = [Dirichlet(left=0.0, right=0.0, dim=-2), Dirichlet(left=0.0, right=1.0, dim=-1)]
    m2 = BOONFNO(n_modes=(16, 16), in_channels=1, out_channels=1, hidden_channels=32, kernel_correction=True,
                 boundary=walls)
    rows.append(_case("2-D 4 walls w32 m16x16 b8 64x64", m2, torch.randn(8, 1, 64, 64), args.repeats))
    print(f"threads: {args.threads}, median of {args.repeats}")
    print("| case | no-grad forward, cached (ms) | no cache (ms) | content check alone (ms) | cache saves |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['cached_ms']:.1f} | {r['uncached_ms']:.1f} | {r['check_ms']:.2f} | "
              f"{1 - r['cached_ms'] / r['uncached_ms']:.0%} |")
    print(f"wrote {write_json(args.out, rows, repeats=args.repeats)}")


if __name__ == "__main__":
    main()
