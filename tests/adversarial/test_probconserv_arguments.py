"""Adversarial: every public argument of probconserv_ext, on every path that sets it.

Class covered: **one strict validation vocabulary on every path** (issue 28). Before the fix ``bool()`` coerced the
switches (``nonnegative="false"`` switched the non-negative update on; ``validate="false"`` kept validation on), a
boolean noise or total became 1.0, plain attribute writes and ``load_state_dict`` bypassed the constructor's checks
(a negative noise, a NaN or zero-row ``G`` only failed later with a message about a singular system), and a model's
``jitter``/``min_variance``/``min_std`` could be set to anything. Each must raise at once, naming the argument, in the
"<name> must be <expected>, got <given>" style, and leave the object unchanged.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from probconserv_ext import (AttentiveNeuralProcess, FNOEnsemble, HeteroscedasticFNO, LinearConstraint, ProbConserv,
                             conservation_constraint, conserved_total, draw_samples, fit_ensemble,
                             fit_heteroscedastic, gaussian_nll, get_problem, posteriors, stack_constraints,
                             value_constraint)

NOT_BOOLS = ["false", "true", "", 0, 1, 0.0, None, [True], torch.tensor(True)]
F64 = torch.float64


def _constraint(n=8, m=1, b=True):
    x = torch.linspace(0, 1, n, dtype=F64)
    c = conservation_constraint(x, total=torch.tensor(0.4, dtype=F64) if b else None)
    if m > 1:
        c = stack_constraints(c, value_constraint(n, list(range(m - 1)), torch.zeros(m - 1, dtype=F64)))
    return c


def _prior(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, generator=g, dtype=F64), 0.1 + torch.rand(n, generator=g, dtype=F64)


# ------------------------------------------------------------------ switches: no truthiness
@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(["nonnegative", "learn_noise", "validate"]), value=st.sampled_from(NOT_BOOLS))
def test_layer_switches_refuse_non_bools(name, value):
    """Strict validation: the layer's switches at construction (``"false"`` was read as True)."""
    kw = {"noise": 0.1} if name == "learn_noise" else {}
    with pytest.raises(TypeError, match=f"^{name} must be a bool"):
        ProbConserv(_constraint(), **kw, **{name: value})


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["nonnegative", "validate"]), value=st.sampled_from(NOT_BOOLS))
def test_layer_switch_setters_refuse_non_bools(name, value):
    """Strict validation: attribute setters of the switches; the layer keeps its setting."""
    layer = ProbConserv(_constraint())
    old = getattr(layer, name)
    with pytest.raises(TypeError, match=f"^{name} must be a bool"):
        setattr(layer, name, value)
    assert getattr(layer, name) is old


@pytest.mark.parametrize("value", [True, False, np.bool_(True), np.bool_(False)])
def test_real_bools_are_accepted(value):
    """Strict validation: Python and NumPy booleans are the accepted switches."""
    layer = ProbConserv(_constraint(), nonnegative=value, validate=value)
    assert layer.nonnegative is bool(value) and layer.validate is bool(value)


def test_nonnegative_setter_checks_the_constraint():
    """Strict validation: ``nonnegative = True`` by attribute is checked against G as in the constructor."""
    layer = ProbConserv(LinearConstraint(torch.randn(2, 8, dtype=F64), torch.zeros(2, dtype=F64)))
    with pytest.raises(ValueError, match="nonnegative=True supports one constraint row"):
        layer.nonnegative = True
    assert layer.nonnegative is False


@pytest.mark.parametrize("call", [
    lambda post, u: post.update_samples(u, perturb="false"),
    lambda post, u: gaussian_nll(post, u[0], joint="false"),
    lambda post, u: LinearConstraint(torch.ones(1, 3), allow_zero_rows="no"),
    lambda post, u: fit_ensemble(FNOEnsemble(2, 2, 1, n_modes=2, hidden_channels=2, n_layers=1),
                                 torch.rand(2, 2, 8), torch.rand(2, 1, 8), epochs=1, progress="no"),
    lambda post, u: fit_heteroscedastic(HeteroscedasticFNO(2, 1, n_modes=2, hidden_channels=2, n_layers=1),
                                        torch.rand(2, 2, 8), torch.rand(2, 1, 8), epochs=1, progress=0),
], ids=["perturb", "joint", "allow_zero_rows", "fit_ensemble.progress", "fit_heteroscedastic.progress"])
def test_other_switches_refuse_non_bools(call):
    """Strict validation: every other boolean argument of the package."""
    mu, var = _prior()
    post = ProbConserv(_constraint(), noise=0.1)(mu, variance=var)
    with pytest.raises(TypeError, match="must be a bool"):
        call(post, mu[None].repeat(2, 1))


# ------------------------------------------------------------------ numbers given as booleans or strings
@pytest.mark.parametrize("noise", [True, np.bool_(False), torch.tensor(True), "0.1", [0.1, 0.2], -1e-3,
                                   float("nan"), float("inf")])
def test_noise_at_construction(noise):
    """Strict validation: the noise (a boolean noise became 1.0 before)."""
    with pytest.raises((TypeError, ValueError), match="^noise must be"):
        ProbConserv(_constraint(), noise=noise)


@pytest.mark.parametrize("make", [
    lambda: value_constraint(5, [0], value=True),
    lambda: conservation_constraint(torch.linspace(0, 1, 5), total=[True, False]),
    lambda: conserved_total(torch.linspace(0, 1, 3), np.bool_(True), net_inflow=torch.zeros(3)),
    lambda: ProbConserv(_constraint())(*_prior(), b=True),
    lambda: ProbConserv(_constraint())(_prior()[0], variance=np.ones(8, dtype=bool)),
], ids=["value", "total", "initial_total", "b", "variance"])
def test_booleans_are_not_numbers(make):
    """Strict validation: booleans where numbers are meant (a total of True was 1.0 before)."""
    with pytest.raises(TypeError, match="must be real-valued"):
        make()


@pytest.mark.parametrize("shape", [3, (True,), (2.0,), (-1,), "3"])
def test_sample_shapes(shape):
    """Strict validation: ``sample_shape`` of every sampler (a bool was a size of 1, an int failed inside torch)."""
    post = ProbConserv(_constraint())(*_prior())
    for sample in (post.rsample, post.sample, lambda s: draw_samples(post, s)):
        with pytest.raises((TypeError, ValueError), match="^sample_shape"):
            sample(shape)


def test_generators_checked_even_when_unused():
    """Strict validation: a generator that is not one is refused even where an exact update draws no noise."""
    layer = ProbConserv(_constraint())
    post = layer(*_prior())
    with pytest.raises(TypeError, match="^generator must be a torch.Generator"):
        post.update_samples(torch.rand(2, 8, dtype=F64), generator="seed")
    with pytest.raises(TypeError, match="^generator must be a torch.Generator"):
        layer.constrain_samples(torch.rand(4, 8, dtype=F64), generator=0)


@pytest.mark.parametrize("call, name", [
    (lambda p: p.solution("0.3", 0.05, 0.6), "x"), (lambda p: p.solution(0.3, True, 0.6), "t"),
    (lambda p: p.make_data(["0.6"], 5, 2), "params"), (lambda p: p.sample_params(3, True), "seed"),
    (lambda p: p.sample_params(3, -1), "seed")])
def test_problem_arguments(call, name):
    """Strict validation: strings and booleans given to the test problems (numpy turned "0.3" into 0.3)."""
    with pytest.raises((TypeError, ValueError), match=f"^{name} must be"):
        call(get_problem("stefan"))


def test_posteriors_methods_must_be_a_sequence():
    """Strict validation: ``methods="hardc"`` was split into letters."""
    mu, var = _prior()
    with pytest.raises(TypeError, match="^methods must be a tuple or list"):
        posteriors(Normal(mu, var.sqrt()), _constraint(), methods="hardc")


# ------------------------------------------------------------------ state: attribute writes and load_state_dict
def _bad_states(layer):
    G = layer.G
    zero_row = G.clone()
    zero_row[0] = 0.0
    nan_G = G.clone()
    nan_G[0, 0] = float("nan")
    yield "G", zero_row, ValueError, "G must have no zero row"
    yield "G", nan_G, ValueError, "G must be finite"
    yield "G", G[:, :-1].clone(), ValueError, "G must have the layer's shape"
    yield "G", G.to(torch.int64), TypeError, "G must be a real floating tensor"
    yield "b", torch.full_like(layer.b, float("inf")), ValueError, "b must be finite"
    yield "b", torch.zeros(layer.m + 1, dtype=F64), ValueError, "b must have shape"
    if "_noise" in layer._buffers:
        yield "_noise", torch.tensor(-1.0, dtype=F64), ValueError, "_noise must be non-negative"
        yield "_noise", torch.tensor(float("nan"), dtype=F64), ValueError, "_noise must be finite"
        yield "_noise", torch.zeros(2, dtype=F64), ValueError, "_noise must be a scalar"
    else:
        yield "log_noise", torch.tensor(float("nan"), dtype=F64), ValueError, "log_noise must be finite"


@pytest.mark.parametrize("learn_noise", [False, True])
@pytest.mark.parametrize("path", ["load_state_dict", "setattr"])
def test_state_is_checked_on_every_path(learn_noise, path):
    """Strict validation: ``load_state_dict`` entries and buffer assignments are checked like the constructor's
    arguments, before anything is copied (the layer stays usable and unchanged)."""
    layer = ProbConserv(_constraint(m=2), noise=0.1 if learn_noise else 0.0, learn_noise=learn_noise)
    good = {k: v.clone() for k, v in layer.state_dict().items()}
    for name, value, err, msg in list(_bad_states(layer)):
        if path == "setattr" and name == "log_noise":
            continue  # a Parameter: nn.Module assigns those only as Parameters
        with pytest.raises(err, match=msg):
            if path == "load_state_dict":
                layer.load_state_dict({**good, name: value})
            else:
                setattr(layer, name, value)
        for k, v in layer.state_dict().items():
            assert torch.equal(v, good[k]), k
    post = layer(*_prior())
    assert bool(torch.isfinite(post.mean).all())


def test_good_state_assignments_are_cast_to_the_compute_dtype():
    """Strict validation: an accepted ``b`` or ``G`` assignment lands in the compute dtype, and ``b = None``
    removes the default right-hand side."""
    layer = ProbConserv(_constraint(), compute_dtype=torch.float32)
    layer.b = torch.tensor([0.25], dtype=F64)
    assert layer.b.dtype == torch.float32
    layer.G = 2 * layer.G.double()
    assert layer.G.dtype == torch.float32
    layer.b = None
    with pytest.raises(ValueError, match="b is required"):
        layer(*_prior())


# ------------------------------------------------------------------ models' settings
@pytest.mark.parametrize("make, name, bad", [
    (lambda: FNOEnsemble(2, 2, 1, n_modes=2, hidden_channels=2, n_layers=1), "jitter", [-1.0, 0.0, "1e-6", True]),
    (lambda: HeteroscedasticFNO(2, 1, n_modes=2, hidden_channels=2, n_layers=1), "min_variance",
     [-1.0, float("nan"), "x", True]),
    (lambda: AttentiveNeuralProcess(hidden=4, latent=2, n_heads=1, n_layers=2), "min_std", [-5.0, 0.0, None, True]),
])
def test_model_settings_checked_when_set(make, name, bad):
    """Strict validation: settings the models read at prediction time, set after construction (a negative
    ``min_std`` gave negative standard deviations before)."""
    model = make()
    old = getattr(model, name)
    for value in bad:
        with pytest.raises((TypeError, ValueError), match=f"^{name} must be"):
            setattr(model, name, value)
        assert getattr(model, name) == old


# ------------------------------------------------------------------ building blocks users construct themselves
@pytest.mark.parametrize("make, err, msg", [
    (lambda: __import__("probconserv_ext.distributed", fromlist=["x"]).slab_bounds(10, rank=True, world_size=2),
     TypeError, "^rank must be an integer"),
    (lambda: __import__("probconserv_ext.distributed", fromlist=["x"]).slab_bounds(10, rank=0, world_size=2.0),
     TypeError, "^world_size must be an integer"),
    (lambda: __import__("probconserv_ext.distributed", fromlist=["x"]).constraint_slab(_constraint(), True, 4),
     TypeError, "^start must be an integer"),
    (lambda: __import__("probconserv_ext.distributed", fromlist=["x"]).conservation_slab(
        torch.linspace(0, 1, 8), 0, 4.0), TypeError, "^stop must be an integer"),
    (lambda: value_constraint(8, [0], 1.0, dtype="float64"), ValueError, "^dtype must be a floating torch.dtype"),
    (lambda: value_constraint(8, [0], 1.0, dtype=torch.int64), ValueError, "^dtype must be a floating torch.dtype"),
], ids=["slab_bounds.rank", "slab_bounds.world_size", "constraint_slab.start", "conservation_slab.stop",
        "value_constraint.dtype_str", "value_constraint.dtype_int"])
def test_slab_and_constraint_builders(make, err, msg):
    """Strict validation: the slab helpers' integers (``rank=True`` was rank 1, a float world size gave float
    bounds) and ``value_constraint``'s dtype."""
    with pytest.raises(err, match=msg):
        make()


def test_structured_gaussian_and_covariances_check_their_arguments():
    """Strict validation: the public distribution and covariance classes check what they are built from (before:
    ``AttributeError`` on a list, a silently mismatched number of nodes, ``n=True``)."""
    from probconserv_ext import (DenseCovariance, DiagonalCovariance, IdentityCovariance, LowRankCovariance,
                                 StructuredGaussian)
    from probconserv_ext import flatten_field, unflatten_field
    cases = [
        (lambda: StructuredGaussian([0.0] * 8, DiagonalCovariance(torch.ones(8))), TypeError, "^loc must be"),
        (lambda: StructuredGaussian(torch.zeros(8), DiagonalCovariance(torch.ones(7))), ValueError, "^loc must have"),
        (lambda: StructuredGaussian(torch.zeros(8), torch.ones(8)), TypeError, "^covariance must be a Covariance"),
        (lambda: StructuredGaussian(torch.zeros(8), DiagonalCovariance(torch.ones(8)), out_dtype=torch.int64),
         ValueError, "^out_dtype must be"),
        (lambda: IdentityCovariance(True), TypeError, "^n must be an integer"),
        (lambda: DiagonalCovariance([1.0, 2.0]), TypeError, "^diag must be a tensor"),
        (lambda: LowRankCovariance(torch.ones(5, 2), torch.ones(4)), ValueError, "^diag must have the factor's n"),
        (lambda: DenseCovariance(torch.ones(3, 4)), ValueError, "^matrix must be a tensor of shape"),
        (lambda: flatten_field([1.0, 2.0], 1), TypeError, "^field must be a tensor"),
        (lambda: unflatten_field([1.0, 2.0], (2,)), TypeError, "^flat must be a tensor"),
    ]
    for make, err, msg in cases:
        with pytest.raises(err, match=msg):
            make()


@pytest.mark.parametrize("bad", ["negative", "nan"])
def test_hand_built_prior_is_validated_by_the_layer(bad):
    """Strict validation: a ``StructuredGaussian`` built by hand reaches the layer through the path that skipped
    the value checks (before: a negative variance gave "singular constraint system", a NaN mean "did not enforce
    G u = b"); it now gets the checks of every other form."""
    from probconserv_ext import DiagonalCovariance, StructuredGaussian
    mu, var = _prior()
    if bad == "negative":
        var = -var
    else:
        mu = mu.clone()
        mu[3] = float("nan")
    with pytest.raises(ValueError, match="^mean .*must be (non-negative|finite)"):
        ProbConserv(_constraint())(StructuredGaussian(mu, DiagonalCovariance(var)))
