"""Checkpoint files are untrusted: every loader refuses a pickle that would run code, before it runs."""

import os
import pickle

import pytest
import torch
from neuralop.models import FNO, TFNO

from boon_ext import (BOONFNO, BOONTFNO, Dirichlet, Neumann, Periodic, UnsafeCheckpointError, load_checkpoint_file,
                      load_ddp_checkpoint)


KW = dict(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4)


class _WritesMarker:
    """Unpickling this object creates the folder ``path`` (a stand-in for arbitrary code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        # creating a folder leaves no open file handle behind (a bare open() would)
        return (os.makedirs, (self.path,))


def _hostile_checkpoint(folder, variant, marker):
    model = BOONFNO(**KW, boundary=Dirichlet(left=0.0))
    model.save_checkpoint(folder, "m")
    name = "m_metadata.pkl" if variant == "metadata" else "m_state_dict.pt"
    content = load_checkpoint_file(folder / name)
    if variant == "embedded":  # inside the state dict's _metadata entry, which load_ddp_checkpoint reads
        content["_metadata"]["non_linearity"] = _WritesMarker(marker)
    else:
        content["payload"] = _WritesMarker(marker)
    torch.save(content, folder / name)
    if variant != "metadata":
        (folder / "m_metadata.pkl").unlink()  # a DDP-style checkpoint: the state dict is all there is


def _load(path, folder):
    if path == "from_checkpoint":
        return BOONFNO.from_checkpoint(folder, "m", boundary=Dirichlet(left=0.0))
    if path == "model_kwargs":
        return BOONFNO.from_checkpoint(folder, "m", boundary=Dirichlet(left=0.0), model_kwargs=dict(KW))
    if path == "instance":  # the method inherited from neuralop's BaseModel reads with full pickle; ours must not
        return BOONFNO(**KW, boundary=Dirichlet(left=0.0)).load_checkpoint(folder, "m")
    return load_ddp_checkpoint(folder, "m", boundary=Dirichlet(left=0.0))


@pytest.mark.parametrize("variant, path", [
    ("metadata", "from_checkpoint"),
    ("metadata", "ddp"),
    ("state", "model_kwargs"),
    ("state", "ddp"),
    ("state", "instance"),
    ("embedded", "model_kwargs"),
    ("embedded", "ddp"),
    ("embedded", "instance"),
])
def test_hostile_checkpoint_is_refused_on_every_loader_without_running(tmp_path, variant, path):
    marker = tmp_path / "marker"
    _hostile_checkpoint(tmp_path, variant, marker)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="trust_pickle=True") as info:
        _load(path, tmp_path)
    assert "GLOBAL os.makedirs" in str(info.value)  # the refused global is named
    assert isinstance(info.value, ValueError)
    assert not marker.exists()


def test_trust_pickle_is_an_explicit_opt_in(tmp_path):
    # The opt-in really is full pickle: the same file runs its payload when (and only when) trusted.
    marker = tmp_path / "marker"
    _hostile_checkpoint(tmp_path, "state", marker)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(tmp_path / "m_state_dict.pt")
    assert not marker.exists()
    content = load_checkpoint_file(tmp_path / "m_state_dict.pt", trust_pickle=True)
    assert marker.exists() and "payload" in content


def test_tanh_metadata_needs_the_opt_in_or_model_kwargs(tmp_path):
    # torch.tanh pickles through getattr, which the allow-list leaves out on purpose.
    model = BOONFNO(**KW, non_linearity=torch.tanh, boundary=Periodic())
    model.save_checkpoint(tmp_path, "m")
    with pytest.raises(UnsafeCheckpointError, match="getattr"):
        BOONFNO.from_checkpoint(tmp_path, "m")
    again = BOONFNO.from_checkpoint(tmp_path, "m", trust_pickle=True)
    x = torch.randn(2, 1, 16)
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize("make", [
    lambda: FNO(**KW),
    lambda: FNO(**KW, non_linearity=torch.nn.functional.silu, factorization="cp", rank=0.5),
    lambda: TFNO(**KW),
    lambda: BOONFNO(**KW, boundary=[Dirichlet(left=[1.0]), Neumann(right=0.3, domain=(0, 2))]),
    lambda: BOONTFNO(**KW, non_linearity=torch.nn.functional.relu, boundary=Periodic()),
])
def test_genuine_checkpoints_load_weights_only(tmp_path, make):
    torch.manual_seed(0)
    model = make()
    model.save_checkpoint(tmp_path, "m")
    for name in ("m_metadata.pkl", "m_state_dict.pt"):
        if type(model) is not TFNO:  # plain TFNO records only given arguments, so it stores no globals
            with pytest.raises(pickle.UnpicklingError):  # the allow-list is what makes these files load
                torch.load(tmp_path / name, weights_only=True)
        assert isinstance(load_checkpoint_file(tmp_path / name), dict)
    boundary = getattr(model, "boundary", None) or Dirichlet(left=0.0)
    loaded = (BOONTFNO if isinstance(model, TFNO) else BOONFNO).from_checkpoint(tmp_path, "m", boundary=boundary)
    state = {k: v for k, v in model.state_dict().items() if k != "_metadata"}
    for k, v in loaded.state_dict().items():
        if k != "_metadata":
            assert torch.equal(v, state[k])
    # the instance method (neuralop's BaseModel.load_checkpoint, replaced) loads the same weights into a fresh model
    torch.manual_seed(1)
    fresh = (BOONTFNO if isinstance(model, TFNO) else BOONFNO)(
        **KW, boundary=boundary, **{k: v for k, v in model._init_kwargs.items() if k in ("non_linearity",
                                                                                         "factorization", "rank")})
    fresh.load_checkpoint(tmp_path, "m")
    for k, v in fresh.state_dict().items():
        if k != "_metadata":
            assert torch.equal(v, state[k])
    (tmp_path / "m_metadata.pkl").unlink()
    assert isinstance(load_ddp_checkpoint(tmp_path, "m", boundary=boundary), BOONFNO)


def test_instance_load_checkpoint_names_a_missing_file_and_a_file_without_a_state_dict(tmp_path):
    model = BOONFNO(**KW, boundary=Dirichlet(left=0.0))
    with pytest.raises(FileNotFoundError, match="no state dict at .*m_state_dict.pt"):
        model.load_checkpoint(tmp_path, "m")
    torch.save([torch.zeros(2)], tmp_path / "m_state_dict.pt")
    with pytest.raises(ValueError, match="m_state_dict.pt holds a list, expected a state dict"):
        model.load_checkpoint(tmp_path, "m")
