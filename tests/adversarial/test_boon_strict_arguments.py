"""Classes: no truthiness coercion, and one strict validation vocabulary on every path (issue 28).

Every public argument of the BOON models and conditions is checked with the same rule wherever it is set: the
constructor, ``from_fno``, a config (``build_model``), the metadata a state dict carries, attribute assignment and
``load_state_dict``. A wrong type is refused with ``TypeError`` and a message naming the argument, never read by
its truthiness (``"false"`` from a JSON file is not False) or converted (``True`` is not 1, ``2.0`` is not 2).
"""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO

from _physics_constrained.validation import check_bool
from boon_ext import (BOONFNO, BOONTFNO, BoundarySpec, Dirichlet, Neumann, build_model,
                      finetune_kernel_correction)

KW = dict(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2)

# Values that are not bools but are truthy or falsy: each must be refused where a bool is meant.
NOT_BOOLS = ["false", "False", "true", "", "0", 0, 1, 0.0, 1.0, None, [], [False], torch.tensor(False)]
# Values that are not ints: refused where an int is meant.
NOT_INTS = [True, False, "4", 4.0, 2.5, None, (4,), torch.tensor(4.5)]


def _model(**kw):
    return BOONFNO(**{**KW, "boundary": [Dirichlet(left=1.0), Neumann(right=0.5)], **kw})


# ------------------------------------------------------------------ class 3: no truthiness coercion
@pytest.mark.parametrize("value", NOT_BOOLS, ids=repr)
def test_check_bool_refuses_every_non_bool(value):
    """Class 3 (truthiness): check_bool accepts True/False only, naming the argument."""
    with pytest.raises(TypeError, match=r"flag must be a bool \(True or False\), got"):
        check_bool(value, "flag")
    assert check_bool(True, "flag") is True and check_bool(False, "flag") is False


@pytest.mark.parametrize("name", ["kernel_correction", "hidden_values"])
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None], ids=repr)
def test_flags_refused_in_constructor_from_fno_setter_and_config(name, value):
    """Class 3 (truthiness): "false" switches nothing on, on the constructor, from_fno, setter and config paths."""
    match = rf"{name} must be a bool"
    with pytest.raises(TypeError, match=match):
        _model(**{name: value})
    if value is not None:  # None means "the source's own setting" in from_fno
        with pytest.raises(TypeError, match=match):
            BOONFNO.from_fno(FNO(**KW), Dirichlet(left=0.0), **{name: value})
    model = _model()
    with pytest.raises(TypeError, match=match):
        setattr(model, name, value)
    assert getattr(model, name) is False and model._init_kwargs[name] is False  # unchanged
    config = json.loads(json.dumps({"model": {"model_arch": "boon_fno", "data_channels": 1, "out_channels": 1,
                                              "n_modes": [6], "hidden_channels": 4, "n_layers": 2,
                                              "boundary": [{"type": "dirichlet", "left": 0.0}], name: value}}))
    with pytest.raises(TypeError, match=match):
        build_model(config)


@pytest.mark.parametrize("value", ["false", 0, "yes"], ids=repr)
def test_state_dict_metadata_flags_are_read_strictly(value):
    """Class 3 (truthiness) on the metadata path: a record saying kernel_correction="false" is refused."""
    source = _model(kernel_correction=True)
    state = source.state_dict()
    state["_metadata"] = dict(state["_metadata"], kernel_correction=value)
    target = _model(kernel_correction=True)
    with pytest.raises(TypeError, match="the metadata's kernel_correction must be a bool"):
        target.load_state_dict(state)


# ------------------------------------------------------------------ class 4: types and ranges at construction
@pytest.mark.parametrize("name", ["in_channels", "out_channels", "hidden_channels", "n_layers"])
@pytest.mark.parametrize("value", NOT_INTS, ids=repr)
def test_model_int_arguments_refused_naming_the_argument(name, value):
    """Class 4 (wrong types at construction): bools, strings and floats where neuralop's ints are meant."""
    with pytest.raises(TypeError, match=rf"{name} must be an integer"):
        BOONFNO(**{**KW, name: value}, boundary=Dirichlet(left=0.0))


@pytest.mark.parametrize("value, match", [
    ((True,), r"n_modes\[0\] must be an integer"), (("6",), r"n_modes\[0\] must be an integer"),
    ((6.0,), r"n_modes\[0\] must be an integer"), ("6", "n_modes must be a tuple"), (6, "n_modes must be a tuple"),
    ((), "n_modes must be a tuple"), ((0,), r"n_modes\[0\] must be an integer >= 1"),
])
def test_n_modes_refused_at_construction(value, match):
    """Class 4 (wrong types at construction): n_modes entries that are bools, strings or floats."""
    with pytest.raises((TypeError, ValueError), match=match):
        BOONFNO(**{**KW, "n_modes": value}, boundary=Dirichlet(left=0.0))
    with pytest.raises((TypeError, ValueError), match=match):  # positional n_modes too
        BOONFNO(value, 1, 1, 4, boundary=Dirichlet(left=0.0))


@pytest.mark.parametrize("kw, error, match", [
    (dict(max_n_modes=(True,)), TypeError, r"max_n_modes\[0\] must be an integer"),
    (dict(max_n_modes=(6, 6)), ValueError, "max_n_modes must have one entry per spatial dim"),
    (dict(lifting_channel_ratio="2"), TypeError, "lifting_channel_ratio must be a real number"),
    (dict(projection_channel_ratio=-1), ValueError, "projection_channel_ratio must be non-negative"),
    (dict(channel_mlp_dropout=1.5), ValueError, r"channel_mlp_dropout must be in \[0, 1\)"),
    (dict(use_channel_mlp="false"), TypeError, "use_channel_mlp must be a bool"),
    (dict(separable=1), TypeError, "separable must be a bool"),
    (dict(time_dim=True), TypeError, "time_dim must be an int"),
    (dict(time_dim="-1"), TypeError, "time_dim must be an int"),
    (dict(lift_width=True), TypeError, "lift_width must be an integer"),
    (dict(lift_width=2.0), TypeError, "lift_width must be an integer"),
    (dict(lift_width=0), ValueError, "lift_width must be an integer >= 1"),
    (dict(bogus=1), TypeError, "bogus"),
    (dict(n_modes=(16,), max_n_modes=(3,)), ValueError, r"n_modes must fit the Fourier weights max_n_modes gives"),
])
def test_other_model_arguments_refused_at_construction(kw, error, match):
    """Class 4 (wrong types at construction): every other argument, named in the message."""
    with pytest.raises(error, match=match):
        BOONFNO(**{**KW, **kw}, boundary=Dirichlet(left=0.0))


@pytest.mark.parametrize("make, error, match", [
    (lambda: Neumann(right=0.5, order=True), TypeError, "order must be an integer"),
    (lambda: Neumann(right=0.5, order=2.0), TypeError, "order must be an integer"),
    (lambda: Neumann(right=0.5, order="2"), TypeError, "order must be an integer"),
    (lambda: Neumann(right=0.5, order=3), ValueError, r"order must be one of \(1, 2\)"),
    (lambda: Dirichlet(left=True), TypeError, "left must be a number"),
    (lambda: Dirichlet(left="1.0"), TypeError, "left must be a number"),
    (lambda: Dirichlet(left=[1.0, True]), TypeError, r"left\[1\] must be a real number"),
    (lambda: Dirichlet(left=0.0, dim=True), TypeError, "dim must be an int"),
    (lambda: Dirichlet(left=0.0, dim="-1"), TypeError, "dim must be an int"),
    (lambda: Dirichlet(left=0.0, channels=[True]), TypeError, "channels must be an integer"),
    (lambda: Dirichlet(left=0.0, channels=["0"]), TypeError, "channels must be an integer"),
    (lambda: Neumann(right=0.5, domain=(0, True)), TypeError, r"domain\[1\] must be a real number"),
    (lambda: BoundarySpec([Dirichlet(left=0.0)], True), TypeError, "n_dim must be an integer"),
    (lambda: BoundarySpec([Dirichlet(left=0.0)], "1"), TypeError, "n_dim must be an integer"),
    (lambda: BoundarySpec([Dirichlet(left=0.0)], 1, out_channels=True), TypeError, "out_channels must be an integer"),
])
def test_condition_arguments_refused_naming_the_argument(make, error, match):
    """Class 4 (wrong types at construction): condition arguments (bools where ints are meant, strings)."""
    with pytest.raises(error, match=match):
        make()


@settings(max_examples=25, deadline=None)
@given(out_channels=st.integers(1, 4), n_values=st.integers(2, 6), side=st.sampled_from(["left", "right"]),
       kind=st.sampled_from([Dirichlet, Neumann]), select=st.booleans())
def test_per_channel_values_that_cannot_fit_are_refused_at_construction(out_channels, n_values, side, kind, select):
    """Class 4 (per-channel values that cannot fit the model): refused at construction, naming the face."""
    channels = list(range(out_channels - 1)) or None if select else None
    n_sel = len(channels) if channels else out_channels
    kw = {**KW, "out_channels": out_channels}
    if n_values == n_sel:
        model = BOONFNO(**kw, boundary=kind(**{side: [0.25] * n_values}, channels=channels))  # one per channel
        y = model(torch.randn(1, 1, 16))
        assert y.shape[1] == out_channels
    else:
        with pytest.raises(ValueError, match=rf"{side} must be one value or per-channel values"):
            BOONFNO(**kw, boundary=kind(**{side: [0.25] * n_values}, channels=channels))


# ------------------------------------------------------------------ class 4: attribute setters
@pytest.mark.parametrize("name, value, error, match", [
    ("lift_width", 0, ValueError, "lift_width must be an integer >= 1"),
    ("lift_width", True, TypeError, "lift_width must be an integer"),
    ("time_dim", "x", TypeError, "time_dim must be an int"),
    ("time_dim", -1, ValueError, "dim must be a spatial axis, not the time axis"),
    ("boundary", [Dirichlet(left=[1.0, 2.0])], ValueError, "left must be one value or per-channel values"),
    ("boundary", "dirichlet", TypeError, "boundary must be a condition"),
    ("boundary_spec", [{"type": "neumann", "right": 0.5, "order": True}], TypeError, "order must be an integer"),
    ("hidden_values", True, ValueError, "hidden_values=True writes prescribed Dirichlet values"),
])
def test_setters_check_like_the_constructor_and_leave_the_model(name, value, error, match):
    """Class 4 (attribute setters): a setting assigned later is checked, and a refused one changes nothing."""
    model = _model()
    x = torch.randn(2, 1, 16)
    before = model(x, boundary_values=None)
    with pytest.raises(error, match=match):
        setattr(model, name, value)
    torch.testing.assert_close(model(x), before, rtol=0, atol=0)
    assert model._init_kwargs["boundary"] == model.boundary_spec.to_config()


def test_setters_record_their_value_for_checkpoints():
    """Class 4 (attribute setters): an accepted setting is recorded in the metadata a checkpoint saves."""
    model = _model()
    model.kernel_correction = True
    model.lift_width = 3
    model.boundary = [Dirichlet(left=2.0)]
    meta = model.state_dict()["_metadata"]
    assert meta["kernel_correction"] is True and meta["lift_width"] == 3
    assert meta["boundary"] == [Dirichlet(left=2.0).to_config()]
    with torch.no_grad():
        assert float(model(torch.randn(1, 1, 16))[0, 0, 0]) == 2.0


# ------------------------------------------------------------------ class 4: load_state_dict
def _state(model):
    state = model.state_dict()
    state.pop("_metadata")
    return state


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), bad=st.sampled_from(["nan", "inf", "list", "int", "real", "complex", "assign"]),
       tfno=st.booleans())
def test_load_state_dict_refuses_before_changing_anything(seed, bad, tfno):
    """Class 4 (load_state_dict path): bad entries are refused naming the key, and the model is left unchanged."""
    torch.manual_seed(seed)
    cls = BOONTFNO if tfno else BOONFNO
    model = cls(**KW, boundary=Dirichlet(left=1.0))
    source = cls(**KW, boundary=Dirichlet(left=1.0))
    state = _state(source)
    keys = list(state)
    key = keys[seed % len(keys)]
    spectral = [k for k in keys if state[k].is_complex()]
    real = [k for k in keys if state[k].is_floating_point()]
    assign = False
    if bad == "nan":
        state[key] = state[key].clone().fill_(float("nan")) if state[key].numel() else state[key]
        error, match = ValueError, "must be finite"
    elif bad == "inf":
        state[key] = torch.full_like(state[key], float("inf"))
        error, match = ValueError, "must be finite"
    elif bad == "list":
        state[key] = state[key].tolist()
        error, match = TypeError, "must be a tensor"
    elif bad == "int":
        key = real[seed % len(real)]
        state[key] = state[key].to(torch.int64)
        error, match = TypeError, "must be a floating tensor"
    elif bad == "real":
        key = spectral[seed % len(spectral)]
        state[key] = state[key].real.clone()
        error, match = ValueError, "imaginary parts of the spectral weights were dropped"
    elif bad == "complex":
        key = real[seed % len(real)]
        state[key] = torch.complex(state[key], torch.ones_like(state[key]))
        error, match = ValueError, "would drop its imaginary part"
    else:
        state = {k: v.double() if v.is_floating_point() else v.to(torch.complex128) for k, v in state.items()}
        assign = True
        error, match = ValueError, "assign=True"
    if bad in ("nan",) and not state[key].numel():
        return
    snapshot = {k: v.clone() for k, v in _state(model).items()}
    with pytest.raises(error, match=match):
        model.load_state_dict(state, assign=assign)
    after = _state(model)
    assert all(torch.equal(after[k], snapshot[k]) and after[k].dtype == snapshot[k].dtype for k in snapshot)
    torch.nn.Module.load_state_dict(model, _state(source))  # a sound state dict still loads (through torch too)


def test_finetune_arguments_are_strict():
    """Class 3/4 (finetune path): progress and weight_decay are not coerced."""
    model = _model()
    with pytest.raises(TypeError, match="progress must be a bool"):
        finetune_kernel_correction(model, [], epochs=1, progress="false")
    with pytest.raises(TypeError, match="weight_decay must be a real number"):
        finetune_kernel_correction(model, [], epochs=1, weight_decay="0")
    assert model.kernel_correction is False  # nothing switched before the refusal


@pytest.mark.parametrize("name", ["relative", "per_face"])
def test_boundary_error_flags_are_strict(name):
    """Class 3 (truthiness): boundary_error(relative="false") does not switch the relative error on."""
    from boon_ext import boundary_error

    u = torch.zeros(1, 1, 8)
    with pytest.raises(TypeError, match=rf"{name} must be a bool"):
        boundary_error(u, Dirichlet(left=1.0), **{name: "false"})


def test_constants_for_stale_conditions_are_refused_naming_the_keys():
    """Class 1/4: a processor built for other conditions than the model's is refused at the call, naming keys."""
    from neuralop.data.transforms.normalizers import UnitGaussianNormalizer
    from boon_ext import BoundaryDataProcessor

    model = _model()
    processor = BoundaryDataProcessor(None, UnitGaussianNormalizer(mean=torch.ones(1), std=torch.ones(1) * 2),
                                      boundary=model.boundary_spec)
    model.boundary = [Dirichlet(right=3.0)]  # changed after the processor was built
    sample = processor.preprocess({"x": torch.randn(2, 1, 16), "y": torch.randn(2, 1, 16)})
    with pytest.raises(ValueError, match="no face reads"):
        model(**sample)


@pytest.mark.parametrize("field", ["kernel_correction", "hidden_values"])
def test_checkpoint_metadata_flags_are_not_read_by_truthiness(tmp_path, field):
    """Class 3 (truthiness) on the checkpoint path: metadata saying "false" is refused, never switched on."""
    model = BOONFNO(**KW, boundary=[Dirichlet(left=1.0, right=0.0)])
    model.save_checkpoint(tmp_path, "m")
    meta = dict(model._init_kwargs, **{field: "false"})
    torch.save(meta, tmp_path / "m_metadata.pkl")
    with pytest.raises((TypeError, ValueError), match=field):
        BOONFNO.from_checkpoint(tmp_path, "m")
