"""The shared checks check_fraction, check_tensor and check_float_dtype: accepted values come back, the rest raise
TypeError (wrong kind) or ValueError (wrong value) in the one message style "<name> must be ..., got ..."."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from _physics_constrained.validation import check_float_dtype, check_fraction, check_tensor


@given(v=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)), include_one=st.booleans())
def test_check_fraction_accepts_exactly_the_unit_interval(v, include_one):
    inside = math.isfinite(v) and 0 <= v <= 1 and (include_one or v < 1)
    if inside:
        out = check_fraction(v, "w", include_one=include_one)
        assert isinstance(out, float) and out == v
    else:
        with pytest.raises(ValueError, match=r"^w must be (finite|in \[0, 1[\])]), got "):
            check_fraction(v, "w", include_one=include_one)


@pytest.mark.parametrize("v", ["0.5", None, True, [0.5], torch.tensor(0.5)])
def test_check_fraction_wrong_kind(v):
    with pytest.raises(TypeError, match="^w must be a real number, got "):
        check_fraction(v, "w")


@given(shape=st.lists(st.integers(0, 3), max_size=4), ndim=st.integers(0, 4), floating=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool]))
def test_check_tensor(shape, ndim, floating, dtype):
    t = torch.zeros(shape, dtype=dtype)
    if floating and not dtype.is_floating_point:
        with pytest.raises(TypeError, match="^x must be a floating tensor, got dtype"):
            check_tensor(t, "x", ndim=ndim, floating=True)
    elif t.ndim != ndim:
        with pytest.raises(ValueError, match=r"^x must be a tensor of shape \(a, b\), got shape"):
            check_tensor(t, "x", ndim=ndim, layout="(a, b)", floating=floating)
    else:
        assert check_tensor(t, "x", ndim=ndim, floating=floating) is t


@pytest.mark.parametrize("v", [np.zeros(3), [0.0], 0.0, None])
def test_check_tensor_wrong_kind(v):
    with pytest.raises(TypeError, match=r"^x must be a tensor of shape \(n,\), got "):
        check_tensor(v, "x", ndim=1, layout="(n,)")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_check_float_dtype_accepts_floating_dtypes(dtype):
    assert check_float_dtype(dtype) is dtype


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64, "float64", np.float64, None])
def test_check_float_dtype_rejects_the_rest(dtype):
    with pytest.raises(ValueError, match="^dtype must be a floating torch.dtype, got "):
        check_float_dtype(dtype)
