"""Class: no dtype cast drops the imaginary parts of the spectral weights (issue 28).

Every way to change a BOON model's precision either keeps the complex spectral weights complex, in the matching
precision (float64 -> complex128, float32 -> complex64), or is refused with the model left as it was:
``.double()``, ``.float()``, ``.half()``, ``.bfloat16()``, ``.to(dtype)``, ``.to(tensor)``, ``.type(...)``,
``load_state_dict`` of a real tensor into a complex weight or of another precision (with and without ``assign``),
and a checkpoint round trip after a cast.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, boundary_error

KW = dict(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2)


def _model(seed, tfno=False, separable=False):
    torch.manual_seed(seed)
    cls = BOONTFNO if tfno else BOONFNO
    extra = {} if tfno else dict(separable=separable)
    model = cls(**KW, **extra, boundary=[Dirichlet(left=1.0), Neumann(right=-0.5)])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_complex():  # imaginary parts of all sizes, none zero
                p.copy_(torch.complex(torch.randn(p.shape, generator=g), torch.randn(p.shape, generator=g)))
    return model


def _complex_params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.is_complex()}


def _all(model):
    return {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())}


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), tfno=st.booleans(), separable=st.booleans())
def test_double_and_float_keep_complex_weights_complex(seed, tfno, separable):
    """Class 5 (dtype casts): .double() gives complex128 weights with the same values; .float() gets them back."""
    model = _model(seed, tfno, separable)
    weights = _complex_params(model)
    assert weights and all(w.imag.abs().min() > 0 for w in weights.values())
    model.double()
    for n, p in model.named_parameters():
        assert p.dtype == (torch.complex128 if p.is_complex() else torch.float64), n
        if n in weights:
            assert torch.equal(p.detach(), weights[n].to(torch.complex128))  # exact: the upcast drops nothing
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    y = model(x)
    assert y.dtype == torch.float64
    assert float(boundary_error(y.detach(), model.boundary_spec, None, relative=True)) < 1e-10
    model.float()
    for n, p in model.named_parameters():
        assert p.dtype == (torch.complex64 if p.is_complex() else torch.float32), n
        if n in weights:
            assert torch.equal(p.detach(), weights[n])  # complex64 -> complex128 -> complex64 is the identity


CASTS = {
    "to(float64)": lambda m: m.to(torch.float64),
    "to(float32)": lambda m: m.to(torch.float32),
    "to(cpu, float64)": lambda m: m.to("cpu", torch.float64),
    "to(dtype=float64)": lambda m: m.to(dtype=torch.float64),
    "to(tensor)": lambda m: m.to(torch.zeros(1, dtype=torch.float64)),
    "to(complex64)": lambda m: m.to(torch.complex64),
    "to(float16)": lambda m: m.to(torch.float16),
    "half()": lambda m: m.half(),
    "bfloat16()": lambda m: m.bfloat16(),
    "type(float64)": lambda m: m.type(torch.float64),
    "type('torch.DoubleTensor')": lambda m: m.type("torch.DoubleTensor"),
    "type(float32)": lambda m: m.type(torch.float32),
}


@pytest.mark.parametrize("cast", list(CASTS))
@pytest.mark.parametrize("tfno", [False, True])
def test_lossy_casts_are_refused_and_change_nothing(cast, tfno):
    """Class 5 (dtype casts): every cast that would make complex weights real (or half) is refused, atomically."""
    model = _model(1, tfno)
    before = _all(model)
    with pytest.raises((TypeError, ValueError), match=r"imaginary|autocast|float32 or float64|bfloat16"):
        CASTS[cast](model)
    after = _all(model)
    assert all(torch.equal(after[k], before[k]) and after[k].dtype == before[k].dtype for k in before)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10**6), tfno=st.booleans(), target64=st.booleans(), source64=st.booleans())
def test_state_dict_of_another_precision_keeps_imaginary_parts(seed, tfno, target64, source64):
    """Class 5 (dtype casts): a state dict of another precision loads into the model's precision, complex kept."""
    source = _model(seed, tfno)
    if source64:
        source.double()
    target = _model(seed + 1, tfno)
    if target64:
        target.double()
    state = source.state_dict()
    target.load_state_dict(state)
    for n, p in target.named_parameters():
        q = state[n]
        assert p.is_complex() == q.is_complex()
        assert p.dtype in ((torch.complex128, torch.float64) if target64 else (torch.complex64, torch.float32))
        if p.is_complex():
            assert p.imag.abs().min() > 0  # imaginary parts arrived
            # rounding to the target's precision, and nothing else
            tol = 0 if target64 or not source64 else 1e-7
            torch.testing.assert_close(p.detach().to(torch.complex128), q.to(torch.complex128), rtol=tol, atol=tol)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), tfno=st.booleans())
def test_real_spectral_weights_from_a_lossy_cast_are_refused_on_load(seed, tfno):
    """Class 5 (dtype casts): a state dict whose spectral weights lost their imaginary parts does not load."""
    source = _model(seed, tfno)
    # What torch's Module.to(torch.float64) saves (real parts only), built without the cast itself: torch warns
    # about it once per process, and tests/boon/test_precision.py checks that warning.
    state = {k: (v.real.clone() if v.is_complex() else v.double()) if torch.is_tensor(v) else v
             for k, v in source.state_dict().items()}
    target = _model(seed + 1, tfno).double()
    before = _all(target)
    for assign in (False, True):
        with pytest.raises(ValueError, match="imaginary parts of the spectral weights were dropped"):
            target.load_state_dict(dict(state), assign=assign)
    after = _all(target)
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_assign_with_matching_precision_loads_and_runs():
    """Class 5 (dtype casts): assign=True is fine when the state dict is in the model's precision."""
    source, target = _model(3).double(), _model(4).double()
    target.load_state_dict(source.state_dict(), assign=True)
    x = torch.randn(2, 1, 16, dtype=torch.float64)
    torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_checkpoint_round_trip_after_double_keeps_complex128(tmp_path):
    """Class 5 (dtype casts): save_checkpoint of a float64 model and from_checkpoint keep the weights exactly."""
    model = _model(5).double()
    model.save_checkpoint(tmp_path, "m")
    loaded = BOONFNO.from_checkpoint(tmp_path, "m")
    for (n, p), (_, q) in zip(model.named_parameters(), loaded.named_parameters()):
        assert p.dtype == q.dtype and torch.equal(p, q), n


@pytest.mark.parametrize("part", ["projection", "lifting", "fno_blocks", "fno_blocks.channel_mlp"])
def test_a_submodule_cast_on_its_own_is_named_at_the_call(part):
    """Class 5 (dtype casts) and class 4 (a later call names the cause): a submodule cast alone is reported as such,
    not as a mismatch deep inside one layer."""
    model = _model(6)
    model.get_submodule(part).double()
    with pytest.raises(TypeError, match="must share one dtype.*model.double"):
        model(torch.randn(1, 1, 16))
    model.double()  # the whole-model cast repairs it, without losing the imaginary parts
    assert all(p.dtype in (torch.float64, torch.complex128) for p in model.parameters())
    model(torch.randn(1, 1, 16, dtype=torch.float64))


def _wrapped(seed):
    """A trained-looking FNO (random weights) inside the generic wrapper."""
    from neuralop.models import FNO

    from boon_ext import BOONWrapper

    torch.manual_seed(seed)
    fno = FNO(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=4, n_layers=2)
    for p in fno.parameters():
        p.data.normal_()
    return BOONWrapper(fno, boundary=Dirichlet(left=0.5, right=-1.0), n_dim=1)


@pytest.mark.parametrize("cast", list(CASTS))
def test_the_generic_wrapper_refuses_lossy_casts_too(cast):
    """Class 5 (dtype casts), the sibling path: BOONWrapper around an FNO refuses what BOONFNO refuses."""
    model = _wrapped(0)
    before = _all(model)
    with pytest.raises((TypeError, ValueError), match=r"imaginary|autocast|float32 or float64|bfloat16"):
        CASTS[cast](model)
    after = _all(model)
    assert all(torch.equal(after[k], before[k]) and after[k].dtype == before[k].dtype for k in before)


def test_the_generic_wrapper_double_keeps_complex_weights_and_conditions():
    """Class 5 (dtype casts), the sibling path: BOONWrapper.double() gives complex128 spectral weights with the
    same values, and the float64 model's conditions hold to float64 round-off."""
    model = _wrapped(1)
    before = _all(model)
    model.double()
    after = _all(model)
    for k, v in before.items():
        want = (torch.complex128 if v.is_complex() else torch.float64) if v.is_floating_point() or v.is_complex() \
            else v.dtype
        assert after[k].dtype == want, k
        assert torch.equal(after[k], v.to(want)), k
    assert any(v.is_complex() for v in after.values())
    u = model(torch.randn(3, 1, 33, dtype=torch.float64))
    assert u.dtype == torch.float64
    assert boundary_error(u, model.boundary, {}, relative=True) < 1e-12
