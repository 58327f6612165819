"""Benchmark: the structured ProbConserv layer against a dense implementation of the same formula.

Both run side by side in one process on the same inputs (diagonal prior variances, one conservation row, 100 time
slices), and their outputs are compared. The dense implementation forms Sigma = diag(var) as an n x n matrix per
slice and evaluates

    A = s2 I + G Sigma G^T,   mu~ = mu - Sigma G^T A^-1 (G mu - b),   Sigma~ = Sigma - Sigma G^T A^-1 G Sigma

with matrix products (slices processed in chunks that keep its working set under ~1.5 GB). The layer uses the
Woodbury form (O(n m^2) time, O(n m) memory) and returns mean and variances; both are materialized in the timing.
A final case updates one field of 10^6 nodes.

Peak memory is the rise of the process's resident set (VmHWM, reset through /proc/self/clear_refs) over its level
before the call, measured in a separate call with glibc's mmap threshold pinned at 64 KiB so that freed buffers go
back to the OS; timings run with buffers kept in the heap (threshold 32 MiB), as a long-running process would.

Usage::

    python -m experiments.benchmark_probconserv            # n = 64 ... 4096, 100 slices, plus 10^6 nodes
    python -m experiments.benchmark_probconserv --quick    # n <= 1024, fewer repeats
    python -m experiments.benchmark_probconserv --out outputs/bench --threads 2
"""

import argparse
import ctypes
import gc
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from experiments.provenance import machine_description, machine_info
from probconserv_ext import ProbConserv, conservation_constraint


_LIBC = None


def _malloc_mode(mode):
    """glibc tuning: "memory" unmaps every buffer >= 64 KiB on free (so the resident set tracks live memory);
    "speed" keeps buffers up to 32 MiB in the heap for reuse (no page faults per call). Returns success."""
    global _LIBC
    try:
        _LIBC = _LIBC or ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    mmap_threshold, trim_threshold = (64 * 1024, 128 * 1024) if mode == "memory" else (32 * 2**20, 256 * 2**20)
    ok = _LIBC.mallopt(-3, mmap_threshold) == 1  # M_MMAP_THRESHOLD
    return ok and _LIBC.mallopt(-1, trim_threshold) == 1  # M_TRIM_THRESHOLD


def _status_kib(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def measure(fn, repeats):
    """Median and minimum wall time (s) over ``repeats`` calls after a warm-up, and the peak resident-set rise (MiB).

    The minimum is the least disturbed by other processes on a shared machine; the median is reported too.
    """
    peak = float("nan")
    if _malloc_mode("memory"):
        fn()
        gc.collect()
        try:
            base = _status_kib("VmRSS")
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current resident set
            fn()
            peak = (_status_kib("VmHWM") - base) / 1024
        except OSError:
            pass
    _malloc_mode("speed")
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), peak


def dense_reference(mu, var, g, b, noise, chunk):
    """The ProbConserv formula with dense n x n covariances (one conservation row)."""
    G = g[None, :]
    means, variances = [], []
    for s in range(0, mu.shape[0], chunk):
        m, v, bb = mu[s : s + chunk], var[s : s + chunk], b[s : s + chunk]
        S = torch.diag_embed(v)
        SGt = S @ G.T
        A = G @ SGt + noise
        K = SGt @ torch.linalg.inv(A)
        means.append(m - (K @ (m @ G.T - bb)[..., None]).squeeze(-1))
        S_post = S - K @ (G @ S)
        variances.append(torch.diagonal(S_post, dim1=-2, dim2=-1).clone())
        del S, SGt, K, S_post
    return torch.cat(means), torch.cat(variances)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="n up to 1024 and fewer repeats")
    p.add_argument("--out", default="outputs/benchmark_probconserv", help="output directory")
    p.add_argument("--slices", type=int, default=100, help="time slices per update")
    # One thread by default: on a shared 2-core machine a second intra-op thread that gets descheduled stalls
    # every parallel region (measured 20-60x slow-downs of the small per-slice kernels).
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--big", type=int, default=1_000_000, help="nodes of the single large update")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    pinned = _malloc_mode("memory")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [64, 128, 256, 512, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048, 4096]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in tqdm(sizes, desc="n"):
        x = torch.sort(torch.rand(n, generator=gen, dtype=torch.float64)).values  # non-uniform grid
        mu = torch.randn(args.slices, n, generator=gen, dtype=torch.float64)
        var = 0.01 + torch.rand(args.slices, n, generator=gen, dtype=torch.float64)
        b = torch.randn(args.slices, 1, generator=gen, dtype=torch.float64)
        c = conservation_constraint(x, total=b[:, 0])
        layer = ProbConserv(c)

        def ours():
            post = layer(mu, variance=var)
            return post.mean, post.variance

        chunk = max(1, min(args.slices, int(1.5e9 // (4 * 8 * n * n))))

        def dense():
            return dense_reference(mu, var, c.G[0], b, 0.0, chunk)

        reps_ours = 5 if args.quick else 20
        reps_dense = 1 if (args.quick or n >= 2048) else 3
        t_ours, tmin_ours, m_ours = measure(ours, reps_ours)
        t_dense, tmin_dense, m_dense = measure(dense, reps_dense)
        (mo, vo), (md, vd) = ours(), dense()
        rows.append(dict(
            n=n, slices=args.slices, time_layer_s=t_ours, time_dense_s=t_dense, speedup=t_dense / t_ours,
            min_time_layer_s=tmin_ours, min_time_dense_s=tmin_dense, speedup_of_minima=tmin_dense / tmin_ours,
            peak_mib_layer=m_ours, peak_mib_dense=m_dense, dense_chunk_slices=chunk,
            max_abs_diff_mean=float((mo - md).abs().max()), max_abs_diff_var=float((vo - vd).abs().max()),
            conservation_error_layer=float((mo @ c.G[0] - b[:, 0]).abs().max()),
        ))
        del mu, var, layer

    big = []
    for dtype in (torch.float64, torch.float32):
        n = args.big
        x = torch.linspace(0, 1, n, dtype=torch.float64)
        mu = torch.sin(20 * x).to(dtype)
        var = (0.01 + x**2).to(dtype)
        layer = ProbConserv(conservation_constraint(x, total=0.1))

        def one():
            post = layer(mu, variance=var)
            return post.mean, post.variance

        t, tmin, mem = measure(one, 5 if args.quick else 10)
        post = layer(mu, variance=var)
        big.append(dict(n=n, input_dtype=str(dtype).replace("torch.", ""), time_s=t, min_time_s=tmin, peak_mib=mem,
                        bytes_per_node=mem * 2**20 / n,
                        conservation_error=float((post.mean.double() @ layer.G[0] - 0.1).abs())))

    machine = dict(machine_info(threads=args.threads), malloc_pinned=pinned)
    result = dict(machine=machine, slices=args.slices, sweep=rows, big=big)
    (out / "benchmark_probconserv.json").write_text(json.dumps(result, indent=2))

    lines = [
        f"# ProbConserv layer vs dense formula ({args.slices} time slices, diagonal prior, 1 constraint row)",
        "",
        f"Machine: {machine_description(machine)}.",
        "",
        "Times are medians (minimum in parentheses); speedup = dense median / layer median.",
        "",
        "| n | layer (ms) | dense (ms) | speedup | layer peak (MiB) | dense peak (MiB) | max |mean diff| | "
        "max |var diff| | layer CE |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {1e3 * r['time_layer_s']:.3f} ({1e3 * r['min_time_layer_s']:.3f}) | "
            f"{1e3 * r['time_dense_s']:.1f} ({1e3 * r['min_time_dense_s']:.1f}) | {r['speedup']:.0f}x | "
            f"{r['peak_mib_layer']:.1f} | {r['peak_mib_dense']:.1f} | {r['max_abs_diff_mean']:.1e} | "
            f"{r['max_abs_diff_var']:.1e} | {r['conservation_error_layer']:.1e} |"
        )
    lines += ["", "| single update, n | input dtype | time (ms), median (min) | peak (MiB) | bytes/node | CE |",
              "|---:|---|---:|---:|---:|---:|"]
    for r in big:
        lines.append(f"| {r['n']} | {r['input_dtype']} | {1e3 * r['time_s']:.1f} ({1e3 * r['min_time_s']:.1f}) | "
                     f"{r['peak_mib']:.1f} | "
                     f"{r['bytes_per_node']:.0f} | {r['conservation_error']:.1e} |")
    table = "\n".join(lines) + "\n"
    (out / "benchmark_probconserv.md").write_text(table)
    print(table)
    print(f"wrote {out / 'benchmark_probconserv.json'} and {out / 'benchmark_probconserv.md'}")


if __name__ == "__main__":
    main()
