"""Samples as neuralop's Trainer takes them, shared by the tests that train through it."""

import torch


class Samples(torch.utils.data.Dataset):
    """``{"x", "y", "boundary_values"}`` dicts from tensors ``x``, ``y`` and a dict of per-sample face values (the
    ``boundary_values`` entry is left out when the dict is empty: a model whose faces are all constants)."""

    def __init__(self, x, y, values):
        self.x, self.y, self.values = x, y, values

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        item = {"x": self.x[i], "y": self.y[i]}
        if self.values:
            item["boundary_values"] = {k: v[i] for k, v in self.values.items()}
        return item
