"""The warning for settings the package's campaign measured to cost accuracy: T2 on a space-time model's walls.

It must fire exactly when the measured condition holds (kernel correction on, with or without the values in every
layer, a time axis, a Dirichlet or Neumann face), from every path that can make it hold (construction, each setter,
the loaders), point at the caller's line, say which of the two settings it measured, and never for the default.
"""

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import FNO

from boon_ext import BOONFNO, BOONTFNO, BoundaryAccuracyWarning, Dirichlet, Neumann, Periodic

MEASURED = "kernel_correction=True on a space-time model with Dirichlet or Neumann faces"


def _risk_warnings(fn):
    """The measured-risk warnings ``fn()`` emits, and its result."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return [w for w in caught if issubclass(w.category, BoundaryAccuracyWarning) and MEASURED in str(w.message)], out


def _conditions(kinds, n_space):
    """One condition per spatial axis (the first ``len(kinds)`` axes), of the kinds given."""
    make = {"dirichlet": lambda d: Dirichlet(dim=d, left=0.5, right=-1.0),
            "neumann": lambda d: Neumann(dim=d, faces=["left", "right"]),
            "periodic": lambda d: Periodic(dim=d)}
    # spatial axes of a (batch, channels, *space, time) tensor, counted from the end before time
    return [make[k](-2 - i) for i, k in enumerate(kinds[:n_space])]


@settings(max_examples=25, deadline=None)
@given(n_space=st.integers(1, 2),
       kinds=st.lists(st.sampled_from(["dirichlet", "neumann", "periodic"]), min_size=1, max_size=2),
       space_time=st.booleans(), kernel_correction=st.booleans(), hidden_values=st.booleans(),
       cls=st.sampled_from([BOONFNO, BOONTFNO]))
def test_warns_exactly_when_the_measured_condition_holds(n_space, kinds, space_time, kernel_correction,
                                                         hidden_values, cls):
    conditions = _conditions(kinds, n_space)
    dirichlet_only = all(isinstance(c, Dirichlet) for c in conditions)
    hidden_values = hidden_values and dirichlet_only  # defined for Dirichlet faces only (refused otherwise)
    n_modes = (4,) * n_space + ((3,) if space_time else (4,))  # without time, the last axis is a free spatial one
    caught, model = _risk_warnings(lambda: cls(n_modes, 1, 1, 4, n_layers=1, boundary=conditions,
                                               time_dim=-1 if space_time else None,
                                               kernel_correction=kernel_correction, hidden_values=hidden_values))
    expected = kernel_correction and space_time and any(isinstance(c, (Dirichlet, Neumann)) for c in conditions)
    assert len(caught) == int(expected), (kinds, space_time, kernel_correction, hidden_values)
    if caught:  # the message measures the setting the model has, not the other one
        assert ("hidden_values=True) it was" in str(caught[0].message)) == hidden_values
    assert model.kernel_correction == kernel_correction  # a warning, never a changed setting


def _space_time(**kwargs):
    return BOONFNO(n_modes=(4, 3), in_channels=1, out_channels=1, hidden_channels=4, n_layers=1,
                   boundary=[Dirichlet(dim=-2, left=0.0, right=1.0)], time_dim=-1, **kwargs)


def test_the_warning_names_the_callers_line_on_construction_and_every_setter():
    caught, _ = _risk_warnings(lambda: _space_time(kernel_correction=True))
    assert [w.filename for w in caught] == [__file__]

    model = _space_time()  # the default: no warning
    caught, _ = _risk_warnings(lambda: setattr(model, "kernel_correction", True))
    assert [w.filename for w in caught] == [__file__]

    with pytest.warns(BoundaryAccuracyWarning, match=MEASURED):
        model = _space_time(kernel_correction=True, hidden_values=True)
    caught, _ = _risk_warnings(lambda: setattr(model, "hidden_values", False))  # the values leave the layers
    assert [w.filename for w in caught] == [__file__]
    assert "without the values in every layer" in str(caught[0].message)

    model = BOONFNO((4, 3), 1, 1, 4, n_layers=1, boundary=[Periodic(dim=-2)], time_dim=-1, kernel_correction=True)
    caught, _ = _risk_warnings(lambda: setattr(model, "boundary", [Dirichlet(dim=-2, left=0.0)]))
    assert [w.filename for w in caught] == [__file__]

    model = BOONFNO((4, 3), 1, 1, 4, n_layers=1, boundary=[Dirichlet(dim=-2, left=0.0)], kernel_correction=True)
    caught, _ = _risk_warnings(lambda: setattr(model, "time_dim", -1))  # a spatial grid declared space-time
    assert [w.filename for w in caught] == [__file__]


def test_settings_that_leave_the_condition_do_not_warn():
    for name, value in [("kernel_correction", False), ("time_dim", None)]:
        with pytest.warns(BoundaryAccuracyWarning, match=MEASURED):
            model = _space_time(kernel_correction=True)
        caught, _ = _risk_warnings(lambda: setattr(model, name, value))
        assert caught == [], name


def test_the_loaders_warn_for_a_model_they_build_with_the_setting(tmp_path):
    fno = FNO((4, 3), 1, 1, 4, n_layers=1)
    caught, wrapped = _risk_warnings(lambda: BOONFNO.from_fno(fno, [Dirichlet(dim=-2, left=0.0)], time_dim=-1,
                                                              kernel_correction=True))
    assert len(caught) == 1
    caught, _ = _risk_warnings(lambda: BOONFNO.from_fno(fno, [Dirichlet(dim=-2, left=0.0)], time_dim=-1))
    assert caught == []  # wrapping with output enforcement, the default

    model = _space_time()
    model.save_checkpoint(tmp_path, "m")
    caught, _ = _risk_warnings(lambda: BOONFNO.from_checkpoint(tmp_path, "m"))
    assert caught == []
    with pytest.warns(BoundaryAccuracyWarning, match=MEASURED):
        model = _space_time(kernel_correction=True)
    model.save_checkpoint(tmp_path, "t2")
    caught, loaded = _risk_warnings(lambda: BOONFNO.from_checkpoint(tmp_path, "t2"))
    assert len(caught) == 1 and loaded.kernel_correction
