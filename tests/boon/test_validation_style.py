"""BOON's argument checks speak the shared vocabulary: "<name> must be <expected>, got <given>"."""

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import (BOONFNO, BoundaryDataProcessor, BoundarySpec, Dirichlet, Neumann, build_model,
                      finetune_kernel_correction, lift_boundary)
from boon_ext.datasets import (burgers_dirichlet, burgers_periodic, gaussian_random_field, heat_neumann,
                               stokes_second_problem)
from boon_ext.datasets.base import common_settings

_MODEL = BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, boundary=Dirichlet(left=0.0))
_U = torch.zeros(1, 1, 9)


def _boon(**kwargs):
    return BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, boundary=Dirichlet(left=0.0),
                   **kwargs)


BAD_CALLS = [
    (lambda: Dirichlet(left="1e-3"), TypeError, "left"),
    (lambda: Dirichlet(left=True), TypeError, "left"),
    (lambda: Dirichlet(left=[1.0, float("nan")], channels=[0, 1]), ValueError, "left[1]"),
    (lambda: Dirichlet(left=[]), ValueError, "left"),
    (lambda: Dirichlet(left=0.0, channels=[0.5]), TypeError, "channels"),
    (lambda: Neumann(left=0.0, domain=(1.0, 0.0)), ValueError, "domain"),
    (lambda: Neumann(left=0.0, domain="ab"), TypeError, "domain"),
    (lambda: Neumann(left=0.0, order=3), ValueError, "order"),
    (lambda: BoundarySpec(Dirichlet(faces=["left"]), 1).check_values({"left": 1, "x": 2}), ValueError,
     "boundary_values"),
    (lambda: lift_boundary(_U, BoundarySpec(Dirichlet(left=0.0), 1), width=0), ValueError, "lift_width"),
    (lambda: lift_boundary(_U, BoundarySpec(Dirichlet(left=0.0), 1), width=2.0), TypeError, "lift_width"),
    (lambda: finetune_kernel_correction(_MODEL, [], epochs=0), ValueError, "epochs"),
    (lambda: finetune_kernel_correction(_MODEL, [], epochs=1.5), TypeError, "epochs"),
    (lambda: finetune_kernel_correction(_MODEL, [], lr=-1.0), ValueError, "lr"),
    (lambda: heat_neumann(0), ValueError, "n_samples"),
    (lambda: heat_neumann(2, n_points=3), ValueError, "n_points"),
    (lambda: heat_neumann(2, domain=(0.5, 1.0)), ValueError, "domain"),
    (lambda: heat_neumann(2, seed=-1), ValueError, "seed"),
    (lambda: heat_neumann(2, ic_alpha=0.0), ValueError, "ic_alpha"),
    (lambda: heat_neumann(2, cache_dir=3), TypeError, "cache_dir"),
    (lambda: stokes_second_problem(2, domain=(0.5, 1.0)), ValueError, "domain"),
    (lambda: stokes_second_problem(2, frequency=(1.0, float("inf"))), ValueError, "frequency[1]"),
    (lambda: burgers_periodic(2, t_final=0.0), ValueError, "t_final"),
    (lambda: burgers_periodic(2, n_points=65, solver_points=32), ValueError, "solver_points"),
    (lambda: burgers_dirichlet(2, n_steps=0), ValueError, "n_steps"),
    (lambda: burgers_dirichlet(2, ic_tau=-1.0), ValueError, "ic_tau"),
    (lambda: gaussian_random_field(2, np.array([0.0, 0.5, 0.4])), ValueError, "grid"),
    (lambda: gaussian_random_field(2, np.linspace(0, 1, 5), kind="robin"), ValueError, "kind"),
    (lambda: heat_neumann(4, n_points=8, t_final=0.01).split(3, 2), ValueError, "n_train + n_test"),
    (lambda: heat_neumann(4, n_points=8, t_final=0.01).dataset([7]), ValueError, "indices"),
    (lambda: _boon(norm="group_norm", kernel_correction=True), ValueError, "norm"),
    (lambda: _boon(preactivation=True, kernel_correction=True), ValueError, "preactivation"),
    (lambda: _boon(stabilizer="tanh", kernel_correction=True), ValueError, "stabilizer"),
    (lambda: _boon(domain_padding=0.25, kernel_correction=True), ValueError, "domain_padding"),
    (lambda: _boon(fno_block_precision="mixed", kernel_correction=True), ValueError, "fno_block_precision"),
    (lambda: lift_boundary(_U, BoundarySpec(Dirichlet(left=0.0), 1), width=5), ValueError, "lift_width"),
    (lambda: BoundarySpec(Dirichlet(left=0.0, dim=-1), n_dim=2, time_dim=-1), ValueError, "dim"),
    (lambda: BoundarySpec(Dirichlet(left=0.0, dim=-3), n_dim=1), ValueError, "dim"),
    (lambda: BoundarySpec(Dirichlet(left=0.0, channels=[3]), n_dim=1, out_channels=2), ValueError, "channels"),
    (lambda: build_model({"model": {"model_arch": "boon_fno"}}), ValueError, "config['model']"),
    (lambda: BoundaryDataProcessor(boundary=[Dirichlet(left=0.0)]), ValueError, "n_dim"),
    (lambda: _MODEL(torch.zeros(0, 1, 8)), ValueError, "x"),
    (lambda: _MODEL(torch.zeros(1, 2, 8)), ValueError, "x"),
]


@pytest.mark.parametrize("call, error, name", BAD_CALLS)
def test_messages_name_the_argument_in_the_shared_style(call, error, name):
    with pytest.raises(error) as info:
        call()
    assert re.match(re.escape(name) + r" must (be|have|start|hold) .*got ", str(info.value)), str(info.value)


@settings(max_examples=50, deadline=None)
@given(n_samples=st.integers(1, 10**6), n_points=st.integers(4, 10**6), t_final=st.floats(1e-6, 1e6),
       a=st.floats(-1e3, 1e3), length=st.floats(1e-3, 1e3), seed=st.integers(0, 2**63),
       ic=st.tuples(st.floats(1e-3, 10), st.floats(0, 10), st.floats(0, 100)), numpy_types=st.booleans())
def test_common_settings_return_the_checked_values(n_samples, n_points, t_final, a, length, seed, ic, numpy_types):
    cast_i, cast_f = (np.int64, np.float64) if numpy_types else (int, float)
    s = common_settings(cast_i(n_samples), cast_i(n_points), cast_f(t_final), (cast_f(a), cast_f(a + length)),
                        seed if seed >= 2**62 else cast_i(seed), ic_alpha=ic[0], ic_tau=ic[1], ic_sigma=ic[2])
    assert s == dict(n_samples=n_samples, n_points=n_points, t_final=t_final, domain=[a, a + length], seed=seed,
                     ic_alpha=ic[0], ic_tau=ic[1], ic_sigma=ic[2])
    # JSON-ready plain Python values (the cache key hashes them).
    assert all(type(v) in (int, float, list) for v in s.values())
    assert type(s["n_samples"]) is int and type(s["t_final"]) is float


@settings(max_examples=50, deadline=None)
@given(which=st.sampled_from(["n_samples", "n_points", "t_final", "seed"]),
       bad=st.one_of(st.integers(-10**6, 0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)))
def test_common_settings_refuse_bad_values_by_name(which, bad):
    args = dict(n_samples=2, n_points=8, t_final=1.0, domain=(0.0, 1.0), seed=0)
    args[which] = bad
    valid = {"n_samples": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
             "n_points": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 4,
             "t_final": lambda v: not isinstance(v, (bool, str)) and np.isfinite(v) and v > 0,
             "seed": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0}[which]
    if valid(bad):
        assert common_settings(**args)[which] == bad
        return
    with pytest.raises((TypeError, ValueError), match=rf"^{which} must be"):
        common_settings(**args)


@settings(max_examples=60, deadline=None)
@given(faces=st.sets(st.sampled_from(["left0", "right0", "left1", "right1"]), min_size=1),
       given_keys=st.sets(st.sampled_from(["left0", "right0", "left1", "right1", "other", "x"])),
       allow_missing=st.booleans())
def test_check_values_refuses_exactly_unread_keys_and_missing_ones_unless_allowed(faces, given_keys, allow_missing):
    conditions = [Dirichlet(faces=[k[:-1]], dim=-2 if k.endswith("0") else -1, keys={k[:-1]: k})
                  for k in sorted(faces)]
    spec = BoundarySpec(conditions, 2)
    assert set(spec.required_keys) == faces
    values = {k: 0.0 for k in given_keys}
    bad = bool(given_keys - faces) or (not allow_missing and bool(faces - given_keys))
    if not bad:
        spec.check_values(values, allow_missing=allow_missing)
        return
    with pytest.raises(ValueError, match=r"^boundary_values must hold exactly the keys .*got .*needed: ") as info:
        spec.check_values(values, allow_missing=allow_missing)
    for k in given_keys - faces:
        assert repr(k) in str(info.value)
