"""Seeded initialisation that leaves the caller's global random state alone."""

import contextlib

import torch

__all__ = ["check_seed", "seeded"]


def check_seed(seed, name="seed"):
    """Return ``seed`` if it is a non-negative Python integer, else raise naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name} must be an integer, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return seed


@contextlib.contextmanager
def seeded(seed):
    """Run the block with torch's generators seeded by ``seed``, then restore their previous states.

    neuralop's modules draw their initial weights from torch's global generator and take no generator argument,
    so the global generator is seeded inside a fork (``torch.random.fork_rng``) instead of being reseeded for the
    caller. ``torch.manual_seed`` also seeds every CUDA device, so every visible CUDA device is forked too (a
    module built under a CUDA default device draws from it); on a machine without CUDA only the CPU generator is.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
