"""Crafted checkpoint files for the adversarial tests: what an attacker or a damaged disk can hand a loader."""

import io
import zipfile
from pathlib import Path

import torch

from boon_ext import BOONFNO, Dirichlet

KW = dict(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1)


class Call:
    """Pickles as the call ``func(*args)``: what a crafted file asks an unpickler to run while it is read."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def genuine(folder, name="m", double=False):
    """A small BOON checkpoint (metadata file and state dict), and the model that wrote it."""
    torch.manual_seed(0)
    model = BOONFNO(**KW, boundary=Dirichlet(left=0.0))
    if double:
        model = model.double()
    Path(folder).mkdir(parents=True, exist_ok=True)
    model.save_checkpoint(folder, name)
    return model


def raw(obj) -> bytes:
    """``torch.save(obj)`` as bytes (full pickle: the crafted objects pickle as the calls they stand for)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def rewrite(path, edit):
    """Rewrite the zip archive at ``path`` record by record: ``edit(name, data)`` returns the new data, or None
    to drop the record. Records stay uncompressed, as torch writes them."""
    path = Path(path)
    with zipfile.ZipFile(path) as z:
        records = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            new = edit(name, data)
            if new is not None:
                z.writestr(name, new)
