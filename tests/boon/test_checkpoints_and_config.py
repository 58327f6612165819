"""Wrapping existing checkpoints, exact round trips, and registration with neuralop's config system."""

from typing import List, Optional

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neuralop.models import FNO, TFNO, get_model
from zencfg import ConfigBase

import boon_ext
from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, Periodic, boundary_error
from boon_strategies import conditions_1d, fno_kwargs, randomize



@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kw=fno_kwargs(), tfno=st.booleans())
def test_plain_checkpoint_wraps_strictly_and_round_trips_exactly(tmp_path_factory, data, kw, tfno):
    folder = tmp_path_factory.mktemp("ckpt")
    conditions = data.draw(conditions_1d())
    torch.manual_seed(data.draw(st.integers(0, 10**6)))
    if tfno:
        for k in ("factorization", "rank", "separable"):
            kw.pop(k)
        base = TFNO(**kw)  # TFNO's metadata omits its factorization defaults: the loader must restore them
    else:
        base = FNO(**kw)
    randomize(base, 1)
    base.save_checkpoint(folder, "plain")
    wrapped = BOONFNO.from_checkpoint(folder, "plain", boundary=conditions)
    in_memory = BOONFNO.from_fno(base, boundary=conditions)
    for (n1, p1), (n2, p2) in zip(wrapped.state_dict().items(), base.state_dict().items()):
        assert n1 == n2
        assert n1 == "_metadata" or torch.equal(p1, p2)
    x = torch.randn(2, kw["in_channels"], 48)
    values = {k: torch.randn(2) for k in wrapped.boundary_spec.required_keys}
    y = wrapped(x, boundary_values=values)
    assert torch.equal(y, in_memory(x, boundary_values=values))
    # the wrapped model's own checkpoint round-trips, conditions included
    wrapped.save_checkpoint(folder, "boon")
    again = BOONFNO.from_checkpoint(folder, "boon")
    assert again.boundary == wrapped.boundary
    assert torch.equal(again(x, boundary_values=values), y)
    assert boundary_error(y, conditions, values, relative=True) < 1e-5


def test_plain_checkpoint_needs_conditions_and_ddp_checkpoint_needs_kwargs(tmp_path):
    base = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=4)
    base.save_checkpoint(tmp_path, "m")
    with pytest.raises(ValueError, match="pass boundary="):
        BOONFNO.from_checkpoint(tmp_path, "m")
    (tmp_path / "m_metadata.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="model_kwargs"):
        BOONFNO.from_checkpoint(tmp_path, "m", boundary=None)
    m = BOONFNO.from_checkpoint(tmp_path, "m", boundary=Dirichlet(left=0.0),
                                model_kwargs=dict(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=4))
    assert m(torch.randn(1, 1, 16))[0, 0, 0] == 0.0
    with pytest.raises(FileNotFoundError, match="no state dict"):
        BOONFNO.from_checkpoint(tmp_path, "missing", boundary=None)


def test_boundary_config_is_plain_in_the_saved_metadata(tmp_path):
    m = BOONTFNO(n_modes=(8,), in_channels=1, out_channels=2, hidden_channels=4,
                 boundary=[Dirichlet(left=[1.0, 2.0]), Neumann(faces=["right"], domain=(0, 2))])
    m.save_checkpoint(tmp_path, "m")
    meta = boon_ext.load_checkpoint_file(tmp_path / "m_metadata.pkl")  # weights-only, with the allow-list
    assert meta["boundary"] == [c.to_config() for c in m.boundary]
    assert meta["factorization"] == "Tucker" and meta["_name"] == "boon_tfno"
    again = BOONTFNO.from_checkpoint(tmp_path, "m")
    assert isinstance(again, BOONTFNO) and again.boundary == m.boundary


def test_registered_names_build_from_a_config():
    assert {"boon_fno", "boon_tfno"} <= set(boon_ext.BOONFNO._models)

    class ModelConfig(ConfigBase):
        model_arch: str = "boon_tfno"
        data_channels: int = 1
        out_channels: int = 1
        n_modes: List[int] = [8]
        hidden_channels: int = 8
        boundary: Optional[List[dict]] = None

    class Config(ConfigBase):
        model: ModelConfig = ModelConfig(boundary=[{"type": "periodic"}])

    model = get_model(Config().to_dict())  # zencfg adds _config_name keys, which must be tolerated
    assert isinstance(model, BOONTFNO) and isinstance(model, TFNO)
    assert model.boundary == [Periodic()]
    y = model(torch.randn(2, 1, 32))
    assert torch.equal(y[..., 0], y[..., -1])
