"""Every checkpoint loader reads each file at most once, and loads the model that was saved."""

import pytest
import torch

import boon_ext
from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, load_ddp_checkpoint

KW = dict(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1)


def _save(folder, cls, drop_metadata):
    torch.manual_seed(0)
    model = cls(**KW, boundary=[Dirichlet(left=1.0), Neumann(right=0.5)]).double()
    model.save_checkpoint(folder, "m")
    if drop_metadata:
        (folder / "m_metadata.pkl").unlink()  # as neuralop's save_training_state writes it under DDP
    return model


# The constructor arguments as the model records them (what its metadata file and state dict hold).
LOADERS = {
    "from_checkpoint": lambda model, folder: type(model).from_checkpoint(folder, "m"),
    "from_checkpoint, model_kwargs": lambda model, folder: type(model).from_checkpoint(
        folder, "m", model_kwargs=dict(model._init_kwargs)),
    "ddp": lambda model, folder: load_ddp_checkpoint(folder, "m"),
    "ddp, model_kwargs": lambda model, folder: load_ddp_checkpoint(folder, "m", model_kwargs=dict(model._init_kwargs)),
}


@pytest.mark.parametrize("cls", [BOONFNO, BOONTFNO])
@pytest.mark.parametrize("loader, drop_metadata", [
    ("from_checkpoint", False),
    ("from_checkpoint, model_kwargs", True),
    ("ddp", False),
    ("ddp", True),  # the constructor arguments come from the state dict, which is then not read again
    ("ddp, model_kwargs", True),
])
def test_each_file_is_read_once(tmp_path, monkeypatch, cls, loader, drop_metadata):
    model = _save(tmp_path, cls, drop_metadata)
    reads = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        reads.append(str(f))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    loaded = LOADERS[loader](model, tmp_path)
    monkeypatch.undo()
    state = str(tmp_path / "m_state_dict.pt")
    meta = str(tmp_path / "m_metadata.pkl")
    assert reads.count(state) == 1
    uses_meta = not drop_metadata and "model_kwargs" not in loader
    assert reads.count(meta) == int(uses_meta)
    assert len(reads) == 1 + int(uses_meta)
    assert type(loaded) is cls
    x = torch.randn(3, 1, 16, dtype=torch.float64)
    assert torch.equal(loaded(x), model(x))


def test_names_stay_exported_from_the_package():
    from boon_ext import checkpoint

    for name in ("CHECKPOINT_GLOBALS", "UnsafeCheckpointError", "load_checkpoint_file", "load_ddp_checkpoint",
                 "save_ddp_checkpoint", "unwrap_ddp"):
        assert getattr(boon_ext, name) is getattr(checkpoint, name)
        assert name in boon_ext.__all__


def test_model_kwargs_must_be_a_mapping_on_every_loader(tmp_path):
    _save(tmp_path, BOONFNO, drop_metadata=True)
    for load in (BOONFNO.from_checkpoint, load_ddp_checkpoint):
        with pytest.raises(TypeError, match="model_kwargs must be a dict of constructor arguments, got list"):
            load(tmp_path, "m", model_kwargs=[("n_modes", (4,))])
