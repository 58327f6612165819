"""Seeded initialisation that leaves the caller's global random state alone."""

import contextlib
from typing import Iterator

import torch

__all__ = ["seeded"]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's generators seeded by ``seed``, then restore their previous states.

    neuralop's modules draw their initial weights from torch's global generator and take no generator argument,
    so the global generator is seeded inside a fork (``torch.random.fork_rng``) instead of being reseeded for the
    caller. ``torch.manual_seed`` also seeds every CUDA device, so every visible CUDA device is forked too (a
    module built under a CUDA default device draws from it); on a machine without CUDA only the CPU generator is.

    Parameters
    ----------
    seed : int
        Non-negative seed (checked by the callers with ``check_int(seed, "seed", minimum=0)``).
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
