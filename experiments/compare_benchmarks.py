"""Run a benchmark script on two source trees in alternation and print their timings side by side.

Used to show that a refactoring costs no speed: each tree runs its own copy of the benchmark against its own
packages (``PYTHONPATH`` points at the tree), the two trees take turns ``--rounds`` times so that both see the same
machine load. Times are compared by their minimum over the rounds (the timing least disturbed by other work on
the machine). For BOON the within-tree ratios BOON-FNO / FNO are compared too, by their median over the rounds: the
plain FNO is the same code in both trees, so its time normalises away drifts in the machine's speed.

    python -m experiments.compare_benchmarks --before /path/to/old/checkout --after . --rounds 2

Writes ``compare_benchmarks.json`` and ``compare_benchmarks.md`` to ``--out``.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from experiments.provenance import machine_description, machine_info

# name -> (benchmark script, JSON file it writes, list key, row label fields, fields compared)
BENCHMARKS = {
    "boon": ("benchmark_boon", "benchmark_boon.json", "results", ("config", "variant"),
             ("boon_fwd_ms", "boon_fwd_grad_ms", "boon_fwd_bwd_ms", "fno_fwd_bwd_ms", "fwd_ratio", "fwd_grad_ratio",
              "fwd_bwd_ratio")),
    "probconserv": ("benchmark_probconserv", "benchmark_probconserv.json", "sweep", ("n",),
                    ("min_time_layer_s",)),
    "probconserv_big": ("benchmark_probconserv", "benchmark_probconserv.json", "big",
                        ("n", "input_dtype"), ("min_time_s",)),
}


# Benchmarks whose script is taken from the new tree for both trees (its API calls work on both), so that both
# measure the same configurations; the others run each tree's own copy.
NEW_SCRIPT_FOR_BOTH = {"benchmark_boon"}


def script_path(tree, script):
    """The benchmark ``script`` of a source tree: ``experiments/<script>.py``, or ``examples/`` in a checkout from
    before the experiments had their own folder."""
    new = tree / "experiments" / f"{script}.py"
    return new if new.is_file() else tree / "examples" / f"{script}.py"


def run_once(tree, script_tree, script, out_dir, extra):
    # The tree's packages first; the script's tree second, for its ``experiments`` helpers when the tree is older.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(script_tree)]))
    cmd = [sys.executable, str(script_path(script_tree, script)), "--quick", "--out", str(out_dir), *extra]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)


def rows_of(path, key, label_fields):
    data = json.loads(path.read_text())
    return {tuple(r[f] for f in label_fields): r for r in data[key]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, type=pathlib.Path, help="source tree of the old code")
    parser.add_argument("--after", default=".", type=pathlib.Path, help="source tree of the new code")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per benchmark")
    parser.add_argument("--threads", default="1", help="torch threads passed to the benchmarks")
    parser.add_argument("--clock", default=None, choices=["wall", "cpu"],
                        help="passed to the BOON benchmark (cpu: process CPU time, for a shared machine)")
    parser.add_argument("--variants", default=None,
                        help="passed to the BOON benchmark: the comma-separated variants to time (default: all)")
    parser.add_argument("--out", default="outputs/compare_benchmarks", type=pathlib.Path)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {list(BENCHMARKS)}")
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = {name: BENCHMARKS[name] for name in args.only.split(",")}
    scripts = sorted({(s, j) for s, j, *_ in chosen.values()})
    runs = {}  # (benchmark, tree) -> {label: {field: [value per round]}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for script, json_name in scripts:
                for side, tree in trees.items():
                    out_dir = pathlib.Path(tmp) / f"{side}_{r}_{pathlib.Path(script).stem}"
                    print(f"round {r + 1}/{args.rounds}: {script} on {side}", flush=True)
                    script_tree = trees["after"] if script in NEW_SCRIPT_FOR_BOTH else tree
                    extra = ["--threads", args.threads]
                    if args.clock and script == "benchmark_boon":
                        extra += ["--clock", args.clock]
                    if args.variants and script == "benchmark_boon":
                        extra += ["--variants", args.variants]
                    run_once(tree, script_tree, script, out_dir, extra)
                    for name, (s, j, key, labels, fields) in chosen.items():
                        if s != script:
                            continue
                        acc = runs.setdefault((name, side), {})
                        for label, row in rows_of(out_dir / j, key, labels).items():
                            cur = acc.setdefault(label, {})
                            for f in fields:
                                cur.setdefault(f, []).append(row[f])
    # Times: the minimum over the rounds. Ratios (measured within one tree and run): the median.
    best = {k: {label: {f: (statistics.median(v) if f.endswith("ratio") else min(v)) for f, v in row.items()}
                for label, row in acc.items()} for k, acc in runs.items()}
    lines = [f"Machine: {machine_description(machine_info(threads=args.threads))}"
             f"{', clock ' + args.clock if args.clock else ''}; {args.rounds} alternating rounds of "
             "`--quick` runs: times are the minimum over the "
             "rounds, ratios the median.", ""]
    result = dict(rounds=args.rounds, threads=args.threads, before=str(trees["before"]), after=str(trees["after"]),
                  benchmarks={})
    for name, (_, _, _, labels, fields) in chosen.items():
        before, after = best[(name, "before")], best[(name, "after")]
        lines += [f"### {name}", "", "| " + " | ".join(labels) + " | quantity | before | after | after / before |",
                  "|" + "---|" * (len(labels) + 4)]
        table = []
        for label in before:
            if label not in after:
                continue
            for f in fields:
                b, a = before[label][f], after[label][f]
                table.append(dict(label=list(label), quantity=f, before=b, after=a, ratio=a / b))
                lines.append("| " + " | ".join(str(x) for x in label) + f" | {f} | {b:.4g} | {a:.4g} | {a / b:.2f} |")
        result["benchmarks"][name] = table
        lines.append("")
    (args.out / "compare_benchmarks.json").write_text(json.dumps(result, indent=2))
    (args.out / "compare_benchmarks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
