"""The machine and the code a result was measured with: recorded in every result file the experiments write.

One description for every script, so that two result files can be compared field by field (issue: the same seeded
run differs at float32 round-off from one CPU to another, and a benchmark's times depend on the core count and the
threads).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def cpu_name():
    """The processor's model name (``/proc/cpuinfo`` where there is one, else ``platform.processor()``)."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return name


def machine_info(threads=None):
    """The machine as a dict: platform, processor, instruction set, cores, torch version and threads, CUDA.

    The instruction set is the one torch's CPU kernels use (e.g. ``"AVX512"``): the same seeded run differs at
    float32 round-off between two of them (measured: 1e-8 relative in the first epoch, with the same code, torch
    build and data), which a bit-for-bit check must tell apart from a change of the code.

    Parameters
    ----------
    threads : int, optional
        The torch threads the measurement used, where the caller set them for the measurement only;
        default ``torch.get_num_threads()``.
    """
    return dict(platform=platform.platform(), machine=platform.machine(), system=platform.system(),
                processor=cpu_name(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                cpu_count=os.cpu_count(), torch=torch.__version__,
                torch_threads=torch.get_num_threads() if threads is None else threads,
                cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


def machine_description(info=None):
    """:func:`machine_info` as one line, e.g. ``"x86_64 Linux, AMD EPYC 7B13, AVX512, 2 CPU cores visible, ..."``."""
    info = machine_info() if info is None else info
    gpu = f", GPU {info['cuda']}" if info.get("cuda") else ""
    return (f"{info['machine']} {info['system']}, {info['processor']}, {info['cpu_capability']}, "
            f"{info['cpu_count']} CPU cores visible, torch {info['torch']}, {info['torch_threads']} threads{gpu}")


def git_commit(paths=("experiments", "boon_ext", "_physics_constrained"), where="the code or the experiments"):
    """The short commit of the tree, flagged when any of ``paths`` has uncommitted changes (described as ``where``).

    Written into every result file so that a figure can be traced to the code that produced it; only the paths
    whose changes would alter the figures are checked, so that unrelated edits do not mark it.
    ``"unknown (git not available)"`` outside a git checkout or without git.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return (head or "unknown") + (f" (with uncommitted changes in {where})" if dirty else "")


def command_line(module, argv):
    """The command that reruns a script: ``python -m experiments.<module> <argv>``, quoted for a shell."""
    import shlex

    return "python " + shlex.join(["-m", f"experiments.{module}", *map(str, argv)])


def write_record(path, record):
    """Write a result ``record`` (a dict) as indented JSON to ``path``, with the commit it was measured at unless it
    names one, creating the folder; print and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "commit": record.get("commit") or git_commit()}
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")
    return path
