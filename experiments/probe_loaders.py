"""Hand crafted files to the package's loaders and report what each one does: refused, loaded, or what it cost.

Each probe runs in its own process under an address-space cap (``--mem-gib``, default 4) and a time limit, so a
loader that tries to allocate what a file asks for fails there (``MemoryError`` / ``RuntimeError``) or times out,
instead of taking the machine. Run it against two checkouts to compare them:

    PYTHONPATH=/path/to/old/checkout python experiments/probe_loaders.py --json before.json
    PYTHONPATH=. python experiments/probe_loaders.py --json after.json

Prints a table (probe, outcome, seconds, peak resident MiB of the probe process) and writes it as JSON.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time

SETUP = textwrap.dedent('''
    import io, os, pickle, sys, zipfile
    from pathlib import Path
    import numpy as np
    import torch
    from neuralop.layers.spectral_convolution import SpectralConv
    from boon_ext import BOONFNO, Dirichlet, load_checkpoint_file, load_config

    class Call:
        def __init__(self, func, *args):
            self.func, self.args = func, args
        def __reduce__(self):
            return (self.func, self.args)

    folder = Path(sys.argv[1])
    torch.manual_seed(0)
    BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1,
            boundary=Dirichlet(left=0.0)).save_checkpoint(folder, "m")
    state_file, meta_file = folder / "m_state_dict.pt", folder / "m_metadata.pkl"
    state = torch.load(state_file, weights_only=False)
    meta = torch.load(meta_file, weights_only=False)
''')

PROBES = {
    "state dict calls SpectralConv(256, 256, (2**17,)) (1.3 KB)":
        'state["p"] = Call(SpectralConv, 256, 256, (2 ** 17,)); torch.save(state, state_file)\n'
        'BOONFNO.from_checkpoint(folder, "m")',
    "state dict calls bytearray(2**35)":
        'state["p"] = Call(bytearray, 2 ** 35); torch.save(state, state_file)\nload_checkpoint_file(state_file)',
    "state dict calls torch.FloatTensor(2**35)":
        'state["p"] = Call(torch.FloatTensor, 2 ** 35); torch.save(state, state_file)\n'
        'load_checkpoint_file(state_file)',
    "metadata hidden_channels=256, n_modes=(2**17,)":
        'meta.update(hidden_channels=256, n_modes=(2 ** 17,)); torch.save(meta, meta_file)\n'
        'BOONFNO.from_checkpoint(folder, "m")',
    "metadata hidden_channels=1024, n_modes=(4000,)":
        'meta.update(hidden_channels=1024, n_modes=(4000,)); torch.save(meta, meta_file)\n'
        'BOONFNO.from_checkpoint(folder, "m")',
    "metadata list repeated 10x per level, 7 levels (memo)":
        'b = [1]\nfor _ in range(7): b = [b] * 10\n'
        'meta["decomposition_kwargs"] = {"x": b}; torch.save(meta, meta_file)\nBOONFNO.from_checkpoint(folder, "m")',
    "YAML alias bomb, 6 levels (565 bytes)":
        'p = folder / "c.yaml"\nlines = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}"]\n'
        'for i in range(1, 6): lines.append(f"a{i}: &a{i} " + "{" + ", ".join(f"k{j}: *a{i-1}" for j in range(10)) + "}")\n'
        'p.write_text("\\n".join(lines) + "\\n")\nload_config(p)',
    "YAML alias bomb, 7 levels (665 bytes)":
        'p = folder / "c.yaml"\nlines = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}"]\n'
        'for i in range(1, 7): lines.append(f"a{i}: &a{i} " + "{" + ", ".join(f"k{j}: *a{i-1}" for j in range(10)) + "}")\n'
        'p.write_text("\\n".join(lines) + "\\n")\nload_config(p)',
    "YAML recursive anchor":
        'p = folder / "c.yaml"; p.write_text("a: &a [1, *a]\\n"); load_config(p)',
    "text file as state dict":
        'state_file.write_text("hello\\n"); BOONFNO.from_checkpoint(folder, "m")',
    "empty file as state dict":
        'state_file.write_bytes(b""); BOONFNO.from_checkpoint(folder, "m")',
    "truncated state dict":
        'd = state_file.read_bytes(); state_file.write_bytes(d[: len(d) // 2]); BOONFNO.from_checkpoint(folder, "m")',
    "directory as state dict":
        'state_file.unlink(); state_file.mkdir(); BOONFNO.from_checkpoint(folder, "m")',
    "symlink to /etc/passwd as state dict":
        'state_file.unlink(); state_file.symlink_to("/etc/passwd"); BOONFNO.from_checkpoint(folder, "m")',
    "symlink to /dev/zero as state dict":
        'state_file.unlink(); state_file.symlink_to("/dev/zero"); load_checkpoint_file(state_file)',
    "metadata is a list":
        'torch.save([1, 2], meta_file); BOONFNO.from_checkpoint(folder, "m")',
    "state dict is a list":
        'torch.save([torch.zeros(2)], state_file); BOONFNO.from_checkpoint(folder, "m")',
    "metadata args: 5":
        'meta["args"] = 5; torch.save(meta, meta_file); BOONFNO.from_checkpoint(folder, "m")',
    "metadata kernel_correction: 'false'":
        'meta["kernel_correction"] = "false"; torch.save(meta, meta_file)\n'
        'm = BOONFNO.from_checkpoint(folder, "m"); print("kernel_correction =", m.kernel_correction)',
    "state dict entry is a str":
        'state["lifting.fcs.0.weight"] = "w"; torch.save(state, state_file); BOONFNO.from_checkpoint(folder, "m")',
    "state dict entry int64":
        'state["lifting.fcs.0.bias"] = state["lifting.fcs.0.bias"].long(); torch.save(state, state_file)\n'
        'm = BOONFNO.from_checkpoint(folder, "m"); print("bias dtype", m.lifting.fcs[0].bias.dtype)',
    "dataset cache: y.npy header states 2**33 floats":
        'from boon_ext.datasets import BoundaryProblem, heat_neumann\n'
        'heat_neumann(3, n_points=8, n_steps=3, seed=0, cache_dir=folder / "cache")\n'
        'path = next((folder / "cache").glob("*.npz"))\n'
        'with zipfile.ZipFile(path) as z: recs = [(n, z.read(n)) for n in z.namelist()]\n'
        'buf = io.BytesIO(); np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, '
        '"shape": (2 ** 33,)})\n'
        'with zipfile.ZipFile(path, "w") as z:\n'
        '    for n, d in recs: z.writestr(n, buf.getvalue() + bytes(64) if n == "y.npy" else d)\n'
        'BoundaryProblem.load(path)',
}

WRAPPER = textwrap.dedent('''
    import resource, sys, time, traceback
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    exec(compile({setup!r}, "setup", "exec"))
    t0 = time.perf_counter()
    try:
        exec(compile({probe!r}, "probe", "exec"))
        outcome = "no error"
    except BaseException as e:
        outcome = f"{{type(e).__name__}}: {{str(e).splitlines()[0] if str(e) else ''}}"
    print("SECONDS", time.perf_counter() - t0)
    print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("OUTCOME", outcome[:240])
''')


def run(name, probe, mem_gib, timeout):
    with tempfile.TemporaryDirectory() as folder:
        code = WRAPPER.format(cap=int(mem_gib * 2 ** 30), setup=SETUP, probe=probe)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True,
                                  timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=folder)
            out = proc.stdout
        except subprocess.TimeoutExpired:
            return dict(probe=name, outcome=f"timed out after {timeout} s", seconds=None, peak_mib=None)
        keys = ("SECONDS", "PEAK", "OUTCOME")
        lines = dict(line.split(" ", 1) for line in out.splitlines() if line.split(" ", 1)[0] in keys)
        if "OUTCOME" not in lines:
            return dict(probe=name, outcome=f"crashed: {proc.stderr.strip().splitlines()[-1:]}",
                        seconds=time.perf_counter() - t0, peak_mib=None)
        extra = [line for line in out.splitlines() if not line.startswith(keys)]
        outcome = lines["OUTCOME"] + (f" [{'; '.join(extra)}]" if extra else "")
        return dict(probe=name, outcome=outcome, seconds=float(lines["SECONDS"]), peak_mib=float(lines["PEAK"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mem-gib", type=float, default=4.0, help="address-space cap of each probe process")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a probe is stopped")
    parser.add_argument("--only", default="", help="run only the probes whose name contains this text")
    parser.add_argument("--json", default=None, help="write the rows to this file")
    args = parser.parse_args()
    rows = []
    for name, probe in PROBES.items():
        if args.only in name:
            row = run(name, probe, args.mem_gib, args.timeout)
            rows.append(row)
            secs = "-" if row["seconds"] is None else f"{row['seconds']:.3f}"
            peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
            print(f"{name:<55} | {secs:>7} s | {peak:>5} MiB | {row['outcome'][:150]}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(python=sys.version.split()[0], mem_gib=args.mem_gib, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
