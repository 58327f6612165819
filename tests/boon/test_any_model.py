"""Output enforcement for any regular-grid model: neuralop's FNO/TFNO (padding, norms), UNO, CODANO, UQNO's
solution and a user's own module, trained a few steps here, wrapped, and checked exact with the interior unchanged;
their checkpoints wrapped through the restricted reader."""

import contextlib
import io
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import CODANO, FNO, TFNO, UNO, UQNO

import boon_ext
from boon_ext import (BOONFNO, BOONWrapper, BoundarySpec, Dirichlet, Neumann, Periodic, UnsafeCheckpointError,
                      boundary_error, build_model, load_state_dict_file)
from boon_strategies import TOL, call_values, conditions_1d


class OwnNet(torch.nn.Module):
    """A user's own model: no neuralop base class, no n_dim attribute."""

    def __init__(self, channels=1, width=8):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv1d(channels, width, 5, padding=2), torch.nn.GELU(),
                                       torch.nn.Conv1d(width, channels, 5, padding=2))

    def forward(self, x):
        return self.net(x)


def _quiet(build):
    with contextlib.redirect_stdout(io.StringIO()):  # CODANO prints while it builds
        return build()


def _train(model, x, y, steps=3, pick=lambda out: out):
    """A few Adam steps on the mean squared error: the weights are trained ones, not the initial draw."""
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = (pick(model(x)) - y).pow(2).mean()
        loss.backward()
        opt.step()
    return model.eval()


def _kinds():
    """name -> (build the model, input shape, conditions, output_index, n_dim)."""
    bc1 = [Dirichlet(left=1.5), Neumann(faces=["right"], domain=(0.0, 2.0))]
    bc2 = [Dirichlet(faces=["left", "right"], dim=-1), Periodic(dim=-2)]
    return {
        "fno_padding_group_norm": (lambda: FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8,
                                               domain_padding=0.25, norm="group_norm"), (4, 1, 32), bc1, None, None),
        "tfno_cp_instance_norm_2d": (lambda: TFNO(n_modes=(6, 6), in_channels=1, out_channels=1, hidden_channels=8,
                                                  factorization="cp", rank=0.5, norm="instance_norm",
                                                  domain_padding=0.1), (2, 1, 16, 16), bc2, None, None),
        "uno": (lambda: UNO(in_channels=1, out_channels=1, hidden_channels=8, n_layers=2, uno_out_channels=[8, 8],
                            uno_n_modes=[[6], [6]], uno_scalings=[[1.0], [1.0]], horizontal_skips_map={}),
                (4, 1, 32), bc1, None, None),
        "codano_2d": (lambda: _quiet(lambda: CODANO(
            output_variable_codimension=1, lifting_channels=8, hidden_variable_codimension=4, projection_channels=8,
            n_layers=2, n_modes=[[4, 4], [4, 4]], n_heads=[1, 1], per_layer_scaling_factors=[[1, 1], [1, 1]],
            attention_scaling_factors=[1, 1])), (2, 2, 16, 16), bc2, None, None),
        "uqno_solution": (lambda: UQNO(FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8),
                                       FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8)),
                          (4, 1, 32), bc1, 0, None),
        "own_module": (lambda: OwnNet(), (4, 1, 32), bc1, None, 1),
    }


KINDS = _kinds()


def _off_faces(u, spec):
    """Nodes on no constrained face: the only ones enforcement may not touch."""
    mask = torch.ones(u.shape, dtype=torch.bool)
    for rule in spec.rules:
        mask.select(2 + rule.axis, 0 if rule.side == "left" else -1).fill_(False)
    return mask


def _values(spec, batch):
    g = torch.Generator().manual_seed(1)
    return {k: torch.randn(batch, generator=g) for k in spec.required_keys}


def _trained(name):
    build, shape, bc, index, n_dim = KINDS[name]
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    y = torch.sin(x)
    if index is None:
        model = _train(model, x, y)
    else:  # UQNO: its base model is trained first, then the residual model on the base model's error
        _train(model.base_model, x, y)
        _train(model, x, (y - model.base_model(x)).abs().detach(), pick=lambda out: out[1])
    return model, x, bc, index, n_dim


@pytest.mark.parametrize("name", list(KINDS))
def test_wrapped_model_is_exact_and_keeps_its_interior_bit_for_bit(name):
    model, x, bc, index, n_dim = _trained(name)
    wrapped = BOONWrapper(model, bc, output_index=index, n_dim=n_dim)
    values = _values(wrapped.boundary_spec, x.shape[0])
    with torch.no_grad():
        out, plain = wrapped(x, boundary_values=values), model(x)
    u, p = (out, plain) if index is None else (out[index], plain[index])
    assert boundary_error(u, wrapped.boundary_spec, values, relative=True) < TOL[torch.float32]
    assert boundary_error(p, wrapped.boundary_spec, values, relative=True) > 1e-3  # the model alone is not exact
    mask = _off_faces(u, wrapped.boundary_spec)
    assert torch.equal(u[mask], p[mask])
    if index is not None:
        assert torch.equal(out[1], plain[1])  # UQNO's quantile is returned as it is


# neuralop warns when a UQNO's state dict nests its models' records; that is neuralop's own, not the wrapper's.
@pytest.mark.filterwarnings("ignore:Attempting to update metadata")
@pytest.mark.parametrize("name", list(KINDS))
def test_checkpoint_of_each_kind_wraps(name, tmp_path):
    model, x, bc, index, n_dim = _trained(name)
    values = _values(BoundarySpec(bc, x.ndim - 2), x.shape[0])
    with torch.no_grad():
        expected = BOONWrapper(model, bc, output_index=index, n_dim=n_dim)(x, boundary_values=values)
    if name == "uqno_solution":
        # A UQNO's metadata holds its two models as objects: the restricted reader refuses to build them.
        model.save_checkpoint(tmp_path, "uq")
        with pytest.raises(UnsafeCheckpointError, match="uq_metadata.pkl.*GLOBAL neuralop.models.fno.FNO.*build it in code"):
            BOONWrapper.from_checkpoint(tmp_path, "uq", boundary=bc, output_index=0)
        # Its base model's checkpoint wraps, and its own state dict loads into a UQNO built in code.
        model.base_model.save_checkpoint(tmp_path, "base")
        base = BOONWrapper.from_checkpoint(tmp_path, "base", boundary=bc)
        with torch.no_grad():
            assert torch.equal(base(x, boundary_values=values), expected[0])
        torch.save(model.state_dict(), tmp_path / "uq.pt")
        fresh = UQNO(FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8),
                     FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8))
        wrapped = BOONWrapper(fresh, bc, output_index=0)
        wrapped.load_state_dict(load_state_dict_file(tmp_path / "uq.pt"))
    elif hasattr(model, "save_checkpoint"):  # neuralop's BaseModel format: weights and constructor arguments
        model.save_checkpoint(tmp_path, "m")
        wrapped = BOONWrapper.from_checkpoint(tmp_path, "m", boundary=bc)
        wrapped.save_checkpoint(tmp_path, "w")  # the conditions travel in the metadata file
        again = BOONWrapper.from_checkpoint(tmp_path, "w")
        with torch.no_grad():
            assert torch.equal(again(x, boundary_values=values), expected)
        if isinstance(model, FNO):  # and the FNO-specific wrapper takes padding and norms too
            boon = BOONFNO.from_checkpoint(tmp_path, "m", boundary=bc)
            with torch.no_grad():
                assert torch.equal(boon(x, boundary_values=values), expected)
    else:  # plain modules (UNO, CODANO, a user's own) are saved as state dicts
        torch.save(model.state_dict(), tmp_path / "m.pt")
        build = KINDS[name][0]
        torch.manual_seed(123)
        wrapped = BOONWrapper(build(), bc, n_dim=n_dim)
        wrapped.load_state_dict(load_state_dict_file(tmp_path / "m.pt"))
    with torch.no_grad():
        got = wrapped(x, boundary_values=values)
    if index is None:
        assert torch.equal(got, expected)
    else:
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_state_dict_is_the_inner_models_own_and_loads_nested():
    model, x, bc, _, _ = _trained("fno_padding_group_norm")
    wrapped = BOONWrapper(model, bc)
    state = wrapped.state_dict()
    assert list(state) == list(model.state_dict())
    plain = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, domain_padding=0.25,
                norm="group_norm")
    plain.load_state_dict(wrapped.state_dict())  # the wrapper's state dict loads into the plain model
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))
    outer = torch.nn.Sequential(wrapped)
    nested = outer.state_dict()
    assert "_metadata" not in nested and all(k.startswith("0.") and not k.startswith("0.model.") for k in nested)
    other = torch.nn.Sequential(BOONWrapper(FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8,
                                                domain_padding=0.25, norm="group_norm"), bc))
    other.load_state_dict(nested)
    values = _values(wrapped.boundary_spec, x.shape[0])
    with torch.no_grad():
        assert torch.equal(other[0](x, boundary_values=values),
                           wrapped(x, boundary_values=values))


def test_configs_name_the_wrapper():
    cfg = {"model": {"model_arch": "boon_wrapper", "inner_arch": "fno", "data_channels": 1, "out_channels": 1,
                     "n_modes": [8], "hidden_channels": 8, "domain_padding": 0.25,
                     "boundary": [{"type": "dirichlet", "left": 0.0, "right": 1.0}]}}
    model = build_model(cfg)
    assert isinstance(model, BOONWrapper) and isinstance(model.model, FNO)
    with torch.no_grad():
        u = model(torch.randn(2, 1, 16))
    assert float(u[:, 0, 0].abs().max()) == 0.0 and bool((u[:, 0, -1] == 1.0).all())
    cfg["model"].update(inner_arch="uno", hidden_channels=8, n_layers=1, uno_out_channels=[8],
                        uno_n_modes=[[4]], uno_scalings=[[1.0]], horizontal_skips_map={})
    del cfg["model"]["n_modes"], cfg["model"]["domain_padding"]
    assert isinstance(build_model(cfg).model, UNO)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([torch.float32, torch.float64]), n=st.integers(8, 40),
       batch=st.integers(1, 3), seed=st.integers(0, 2 ** 16))
def test_any_conditions_on_a_random_own_module_hold_exactly(data, dtype, n, batch, seed):
    bc = data.draw(conditions_1d())
    torch.manual_seed(seed)
    model = OwnNet(channels=2).to(dtype)
    wrapped = BOONWrapper(model, bc, n_dim=1)
    values = call_values(data.draw, wrapped.boundary_spec, batch, 2, dtype=dtype)
    x = torch.randn(batch, 2, n, dtype=dtype)
    with torch.no_grad():
        u, p = wrapped(x, boundary_values=values), model(x)
    assert u.dtype == dtype
    assert boundary_error(u, bc, values, relative=True) < TOL[dtype]
    mask = _off_faces(u, wrapped.boundary_spec)
    assert torch.equal(u[mask], p[mask])


def test_gradients_flow_to_the_wrapped_model():
    model = OwnNet()
    wrapped = BOONWrapper(model, [Dirichlet(left=0.0)], n_dim=1)
    wrapped(torch.randn(2, 1, 16)).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


@pytest.mark.parametrize("call, error, match", [
    (lambda: BOONWrapper(OwnNet(), Dirichlet(left=0.0)), TypeError, "n_dim must be given"),
    (lambda: BOONWrapper("fno", Dirichlet(left=0.0)), TypeError, "model must be a torch.nn.Module"),
    (lambda: BOONWrapper(None, Dirichlet(left=0.0), inner_arch="nope"), ValueError, "inner_arch must be one of"),
    (lambda: BOONWrapper(OwnNet(), Dirichlet(left=0.0), n_dim=1, inner_arch="fno"), TypeError, "not both"),
    (lambda: BOONWrapper(OwnNet(), Dirichlet(left=0.0), n_dim=1, output_index=-1), ValueError, "output_index"),
    (lambda: BOONWrapper(OwnNet(), Dirichlet(left=0.0), n_dim=True), TypeError, "n_dim"),
    (lambda: BOONWrapper(OwnNet(), Dirichlet(left=0.0), n_dim=1, lift_width=0), ValueError, "lift_width"),
])
def test_bad_arguments_are_refused_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_output_errors_name_what_to_pass():
    uq = UQNO(FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4),
              FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4))
    with pytest.raises(TypeError, match="output_index"):
        BOONWrapper(uq, Dirichlet(left=0.0))(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match=r"boundary_values\['left'\] is missing.*BoundaryDataProcessor"):
        BOONWrapper(OwnNet(), Dirichlet(faces=["left"]), n_dim=1)(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="spatial"):
        BOONWrapper(OwnNet(), Dirichlet(left=0.0, dim=-2), n_dim=2)(torch.randn(1, 1, 8))


def test_plain_checkpoint_needs_boundary_and_a_forged_name_is_refused(tmp_path):
    fno = FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4)
    fno.save_checkpoint(tmp_path, "m")
    with pytest.raises(ValueError, match="pass boundary="):
        BOONWrapper.from_checkpoint(tmp_path, "m")
    meta = boon_ext.load_checkpoint_file(tmp_path / "m_metadata.pkl")
    meta["_name"] = "boon_wrapper"
    torch.save(meta, tmp_path / "m_metadata.pkl")
    with pytest.raises(UnsafeCheckpointError, match="_name"):
        BOONWrapper.from_checkpoint(tmp_path, "m", boundary=Dirichlet(left=0.0))
    meta["_name"] = "FNO"
    meta["hidden_channels"] = 10 ** 9  # a size no tensor of the file holds: refused before anything is built
    torch.save(meta, tmp_path / "m_metadata.pkl")
    with pytest.raises(UnsafeCheckpointError, match="hidden_channels"):
        BOONWrapper.from_checkpoint(tmp_path, "m", boundary=Dirichlet(left=0.0))


def test_plain_state_dict_of_a_neuralop_model_reads_where_torch_load_fails(tmp_path):
    fno = FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4)
    torch.save(fno.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(Exception, match="gelu"):
        torch.load(tmp_path / "sd.pt")  # the trap: _metadata holds torch._C._nn.gelu
    state = load_state_dict_file(tmp_path / "sd.pt")
    other = FNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other.load_state_dict(state)
    x = torch.randn(1, 1, 8)
    with torch.no_grad():
        assert torch.equal(other(x), fno(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UnsafeCheckpointError, match="bad.pt"):
        load_state_dict_file(tmp_path / "bad.pt")


@settings(max_examples=15, deadline=None)
@given(data=st.data(), padding=st.sampled_from([None, 0.1, 0.25, 0.5]),
       norm=st.sampled_from([None, "group_norm", "instance_norm"]), n=st.integers(12, 40), seed=st.integers(0, 2 ** 16))
def test_boonfno_output_enforcement_with_any_padding_and_norm(data, padding, norm, n, seed):
    # The FNO-specific wrapper and the generic one agree, bit for bit, on FNOs with padding and norms. (float32:
    # neuralop's FNO.double() keeps complex64 spectral weights and then fails on float64 inputs.)
    bc = data.draw(conditions_1d())
    torch.manual_seed(seed)
    fno = FNO(n_modes=(6,), in_channels=1, out_channels=2, hidden_channels=8, domain_padding=padding, norm=norm)
    boon = BOONFNO.from_fno(fno, boundary=bc)
    values = call_values(data.draw, boon.boundary_spec, 2, 2)
    x = torch.randn(2, 1, n)
    with torch.no_grad():
        u, plain, generic = boon(x, boundary_values=values), fno(x), BOONWrapper(fno, bc)(x, boundary_values=values)
    assert boundary_error(u, bc, values, relative=True) < TOL[torch.float32]
    mask = _off_faces(u, boon.boundary_spec)
    assert torch.equal(u[mask], plain[mask])
    assert torch.equal(u, generic)
