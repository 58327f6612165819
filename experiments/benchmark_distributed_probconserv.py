"""Benchmark of the domain-decomposed ProbConserv update with 1 and 2 processes (gloo on CPU).

    python -m experiments.benchmark_distributed_probconserv            # 10^6 and 10^7 nodes
    python -m experiments.benchmark_distributed_probconserv --quick    # 10^5 and 10^6 nodes, fewer repeats

For each process count the script starts that many gloo processes on 127.0.0.1 (torch.multiprocessing, one torch
thread each) and times, on every configuration (nodes n, constraint rows m, diagonal or rank-r-plus-diagonal
covariance), the full update ``DistributedProbConserv(...)(mean, ...)`` on each rank's slab: median over repeats,
then the slowest rank. It also times the all-reduces alone (same sizes) and, with one process, the single-process
``ProbConserv`` layer on the same data. Bytes: what each rank contributes to the all-reduces per update (an
agreement header plus ``3 m + m^2 (+ r m)`` float64 per field) and that payload per constraint row; the bytes a
rank actually sends depend on the all-reduce algorithm (ring: ``2 (P-1)/P`` times the payload).

Outputs (``--out``, default ``outputs/benchmark_distributed_probconserv``): ``results.md``, ``results.json``,
``time_per_update.png``.
"""

import argparse
import datetime
import json
import socket
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments.provenance import machine_description  # noqa: E402
from probconserv_ext import DistributedProbConserv, LinearConstraint, ProbConserv  # noqa: E402
from probconserv_ext.collectives import CountingCollectives  # noqa: E402
from probconserv_ext.distributed import conservation_slab, slab_bounds  # noqa: E402


def _configs(sizes):
    out = []
    for n in sizes:
        out += [dict(n=n, m=1, cov="diagonal", r=0), dict(n=n, m=3, cov="diagonal", r=0),
                dict(n=n, m=1, cov="low-rank", r=4)]
    return out


def _slab_problem(cfg, start, stop, seed):
    """Slab of a field on [0, 1]: trapezoid row plus random rows, mean, diagonal or low-rank-plus-diagonal prior."""
    g = torch.Generator().manual_seed(seed)
    n, m = cfg["n"], cfg["m"]
    grid = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    rows = [conservation_slab(grid, start, stop).G]
    # Extra rows: smooth weights (moments of the field), evaluated on the slab only.
    x = grid[start:stop]
    rows += [(x**k / n)[None, :] for k in range(1, m)]
    G = torch.cat(rows)
    k = stop - start
    mean = torch.sin(6.28 * x) + 0.1 * torch.randn(k, generator=g, dtype=torch.float64)
    prior = dict(variance=0.01 + torch.rand(k, generator=g, dtype=torch.float64))
    if cfg["cov"] == "low-rank":
        prior = dict(cov_factor=0.1 * torch.randn(k, cfg["r"], generator=g, dtype=torch.float64),
                     cov_diag=prior["variance"])
    return G, mean, prior


def _worker(rank, world, port, cfgs, repeats, queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=10))
    rows = []
    for cfg in tqdm(cfgs, desc=f"{world} process(es)", disable=rank != 0, unit="config"):
        start, stop = slab_bounds(cfg["n"])
        G, mean, prior = _slab_problem(cfg, start, stop, seed=rank)
        b = torch.zeros(cfg["m"], dtype=torch.float64)
        layer = DistributedProbConserv(G)  # this rank's columns of G (a row may vanish on a slab)
        layer(mean, **prior, b=b)  # warm-up
        times = []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            layer(mean, **prior, b=b)
            times.append(time.perf_counter() - t0)
        plain, layer.collectives = layer.collectives, CountingCollectives(layer.group)  # one counted call
        layer(mean, **prior, b=b)
        comm, layer.collectives = layer.collectives.bytes, plain
        # The two all-reduces alone, at the update's sizes.
        m, r = cfg["m"], cfg["r"]
        payload = torch.zeros(3 * m + m * m + r * m, dtype=torch.float64)  # one field: 3m + m^2 + r m numbers
        header = torch.zeros(comm // 8 - payload.numel(), dtype=torch.float64)
        comm_times = []
        for _ in range(repeats):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(header)
            dist.all_reduce(payload)
            comm_times.append(time.perf_counter() - t0)
        single = None
        if world == 1:
            plain = ProbConserv(LinearConstraint(G, b))
            plain(mean, **prior)
            st = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                plain(mean, **prior)
                st.append(time.perf_counter() - t0)
            single = statistics.median(st)
        stats = torch.tensor([statistics.median(times), statistics.median(comm_times)], dtype=torch.float64)
        dist.all_reduce(stats, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
        if rank == 0:
            payload_bytes = payload.numel() * 8
            rows.append(dict(**cfg, processes=world, nodes_per_rank_max=stop - start,
                             seconds_per_update=float(stats[0]), seconds_all_reduce=float(stats[1]),
                             seconds_single_process_layer=single, bytes_per_update=comm,
                             payload_bytes=payload_bytes, payload_bytes_per_constraint=payload_bytes / cfg["m"],
                             ring_bytes_sent_per_rank=2 * (world - 1) / world * comm))
        del layer, G, mean, prior
    if rank == 0:
        queue.put(rows)
    dist.barrier()
    dist.destroy_process_group()


def run(world, cfgs, repeats):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, port, cfgs, repeats, queue)) for r in range(world)]
    for p in procs:
        p.start()
    try:
        rows = queue.get(timeout=3600)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10^5 and 10^6 nodes, 3 repeats")
    parser.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default="outputs/benchmark_distributed_probconserv")
    args = parser.parse_args()
    sizes = [10**5, 10**6] if args.quick else [10**6, 10**7]
    repeats = args.repeats or (3 if args.quick else 5)
    cfgs = _configs(sizes)
    procs = [int(p) for p in args.procs.split(",")]
    rows = []
    for world in procs:
        rows += run(world, cfgs, repeats)

    base = {(r["n"], r["m"], r["cov"]): r["seconds_per_update"] for r in rows if r["processes"] == 1}
    for r in rows:
        key = (r["n"], r["m"], r["cov"])
        r["speedup_vs_1_process"] = base[key] / r["seconds_per_update"] if key in base else None
    machine = machine_description() + ", gloo on 127.0.0.1"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(dict(machine=machine, repeats=repeats, rows=rows), indent=2))

    head = ("| n | m | covariance | processes | s / update | s all-reduce | s single-process layer | speed-up | "
            "bytes / update (header + payload) | payload bytes / constraint |")
    lines = [f"Machine: {machine}; median of {repeats} repeats, slowest rank.", "", head, "|" + "---|" * 10]
    for r in rows:
        single = "" if r["seconds_single_process_layer"] is None else f"{r['seconds_single_process_layer']:.4f}"
        cov = r["cov"] + (f" (r={r['r']})" if r["r"] else "")
        lines.append(f"| {r['n']:.0e} | {r['m']} | {cov} | {r['processes']} | {r['seconds_per_update']:.4f} | "
                     f"{r['seconds_all_reduce']:.5f} | {single} | {r['speedup_vs_1_process']:.2f} | "
                     f"{r['bytes_per_update']} | {r['payload_bytes_per_constraint']:.0f} |")
    text = "\n".join(lines) + "\n"
    (out_dir / "results.md").write_text(text)
    print(text)

    fig, ax = plt.subplots(figsize=(6, 4))
    for (m, cov), style in zip(sorted({(r["m"], r["cov"]) for r in rows}), ("o-", "s--", "^:")):
        for world, color in zip(procs, ("C0", "C3", "C2", "C1")):
            pts = sorted((r["n"], r["seconds_per_update"]) for r in rows
                         if r["m"] == m and r["cov"] == cov and r["processes"] == world)
            ax.loglog(*zip(*pts), style, color=color, label=f"m={m}, {cov}, {world} proc")
    ax.set_xlabel("nodes n")
    ax.set_ylabel("seconds per update")
    ax.set_title("Domain-decomposed ProbConserv (gloo, CPU)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "time_per_update.png", dpi=120)
    print(f"wrote {out_dir}/results.md, results.json, time_per_update.png")


if __name__ == "__main__":
    main()
