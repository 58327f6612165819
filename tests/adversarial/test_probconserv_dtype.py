"""Adversarial: half-precision compute dtypes on every path that sets one.

Class covered: **compute dtype limited to float32 and float64** (issue 28). Before the fix ``compute_dtype=float16``
was accepted: one row conserved only to 6e-4, the round-off check's tolerance (0.72 at n = 16) could never fail, and
two rows crashed inside Cholesky; ``.half()`` and ``load_state_dict(..., assign=True)`` cast the constraint behind
``compute_dtype``'s back, and the next call failed with a matmul dtype error. Every path must refuse half precision
with "compute_dtype must be torch.float32 or torch.float64, got ..." and leave the layer as it was; the paths that
change the dtype between float32 and float64 keep the buffers and ``compute_dtype`` in step.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext import (AttentiveNeuralProcess, FNOEnsemble, HeteroscedasticFNO, ProbConserv,
                             conservation_constraint, stack_constraints, value_constraint)
from probconserv_ext.update import residual_tolerance

HALF = [torch.float16, torch.bfloat16]
NOT_DTYPES = [torch.int64, torch.complex64, torch.bool, "float64", None, 64]
MSG = r"must be torch.float32 or torch.float64, got"


def _layer(n=9, m=1, **kw):
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    c = conservation_constraint(x, total=torch.tensor(0.3, dtype=torch.float64))
    if m > 1:
        c = stack_constraints(c, value_constraint(n, list(range(m - 1)), torch.zeros(m - 1, dtype=torch.float64)))
    return ProbConserv(c, **kw)


def _call(layer, dtype=torch.float64):
    n = layer.n
    g = torch.Generator().manual_seed(0)
    return layer(torch.rand(n, generator=g, dtype=dtype), variance=0.1 + torch.rand(n, generator=g, dtype=dtype))


@pytest.mark.parametrize("dtype", HALF + NOT_DTYPES)
def test_constructor_refuses(dtype):
    """Compute dtype limited to float32/float64: the constructor (and the subclass through it)."""
    with pytest.raises(ValueError, match="^compute_dtype " + MSG):
        _layer(compute_dtype=dtype)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("path", ["setter", "half", "to", "to_kw", "type"])
def test_casts_refused_and_layer_unchanged(dtype, path):
    """Compute dtype limited to float32/float64: the setter, ``.half()``, ``.to(dtype)``, ``.to(dtype=...)`` and
    ``.type(dtype)`` refuse half precision before casting anything."""
    layer = _layer(m=2, noise=0.0)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match=MSG):
        if path == "setter":
            layer.compute_dtype = dtype
        elif path == "half":
            (layer.half() if dtype == torch.float16 else layer.bfloat16())
        elif path == "to":
            layer.to(dtype)
        elif path == "to_kw":
            layer.to(dtype=dtype)
        else:
            layer.type(dtype)
    assert layer.compute_dtype == torch.float64
    for k, v in layer.state_dict().items():
        assert v.dtype == torch.float64 and torch.equal(v, before[k])
    assert _call(layer).constraint_residual().abs().max() < 1e-12


@pytest.mark.parametrize("cast", ["float", "to", "setter"])
def test_float32_cast_keeps_buffers_and_compute_dtype_in_step(cast):
    """Compute dtype limited to float32/float64: a cast to float32 moves ``compute_dtype`` with the buffers (before:
    the buffers were float32 and the next call failed with a matmul dtype error), and back to float64."""
    layer = _layer(m=2)
    if cast == "float":
        layer.float()
    elif cast == "to":
        layer.to(torch.float32)
    else:
        layer.compute_dtype = torch.float32
    assert layer.compute_dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in layer.state_dict().values())
    post = _call(layer)
    assert post.loc.dtype == torch.float32
    scale = post.mean.abs().sum() * layer.G.abs().max() + 1
    assert float(post.constraint_residual().abs().max()) <= residual_tolerance(torch.float32, layer.n) * scale
    layer.double()
    assert layer.compute_dtype == torch.float64 and layer.G.dtype == torch.float64


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
@pytest.mark.parametrize("learn_noise", [False, True])
def test_load_state_dict_assign_keeps_the_compute_dtype(dtype, learn_noise):
    """Compute dtype limited to float32/float64: ``load_state_dict(..., assign=True)`` with tensors of another dtype
    (half precision included) leaves the layer in its compute dtype (before: float16 buffers, then a crash)."""
    layer = _layer(m=2, noise=0.1 if learn_noise else 0.0, learn_noise=learn_noise)
    state = {k: v.to(dtype) for k, v in layer.state_dict().items()}
    layer.load_state_dict(state, assign=True)
    assert layer.compute_dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in layer.state_dict().values())
    assert bool(torch.isfinite(_call(layer).mean).all())


@pytest.mark.parametrize("model", ["ensemble", "heteroscedastic", "anp"])
@pytest.mark.parametrize("dtype", HALF)
def test_model_predictions_refuse_half_precision(model, dtype):
    """Compute dtype limited to float32/float64: the probabilistic models' ``predict(dtype=...)`` (the dtype the
    ensemble's capacitance is factored in and the layer's prior arrives in)."""
    with pytest.raises(ValueError, match="^dtype " + MSG):
        if model == "ensemble":
            m = FNOEnsemble(2, 2, 1, n_modes=2, hidden_channels=4, n_layers=1)
            m.predict(torch.rand(1, 2, 8), dtype=dtype)
        elif model == "heteroscedastic":
            m = HeteroscedasticFNO(2, 1, n_modes=2, hidden_channels=4, n_layers=1)
            m.predict(torch.rand(1, 2, 8), dtype=dtype)
        else:
            m = AttentiveNeuralProcess(hidden=4, latent=2, n_heads=1, n_layers=2)
            m.predict(torch.rand(1, 3, 2), torch.rand(1, 3), torch.rand(1, 4, 2), n_latent=2, dtype=dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 200), m=st.integers(1, 3), log_scale=st.floats(-6, 6),
       compute=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**31 - 1))
def test_allowed_dtypes_conserve_to_a_tolerance_that_can_fail(n, m, log_scale, compute, seed):
    """Compute dtype limited to float32/float64: in both, an exact update conserves to the round-off tolerance of
    its dtype, and that tolerance is a real test (far below 1; for float16 it was 0.72 at n = 16)."""
    m = min(m, n)
    tol = residual_tolerance(compute, n)
    assert tol < 1e-2
    assert residual_tolerance(compute, 10**6) < 5e-2
    g = torch.Generator().manual_seed(seed)
    scale = 10.0**log_scale
    x = torch.cumsum(0.1 + torch.rand(n, generator=g, dtype=torch.float64), 0)
    c = conservation_constraint(x)
    if m > 1:
        c = stack_constraints(c, value_constraint(n, torch.randperm(n, generator=g)[: m - 1].tolist(),
                                                  dtype=torch.float64))
    mu = scale * torch.rand(n, generator=g, dtype=torch.float64)
    var = scale**2 * (0.1 + torch.rand(n, generator=g, dtype=torch.float64))
    b = (c.G @ mu) * 1.3
    post = ProbConserv(c, compute_dtype=compute)(mu, variance=var, b=b)
    res = post.constraint_residual().abs()
    size = post.mean.abs() @ c.G.abs().mT + b.abs() + mu.abs() @ c.G.abs().mT
    assert bool((res <= tol * size).all())
    assert math.isfinite(float(post.stddev.sum()))
