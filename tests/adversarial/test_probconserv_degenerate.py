"""Adversarial: degenerate sizes given to the probabilistic models and the ProbConserv building blocks.

Class covered: **degenerate sizes** (issue 28). Before the fix an empty target set, an empty batch, a field with zero
nodes, zero training samples or a wrong channel count reached torch and failed there (``cannot reshape tensor of 0
elements``, ``torch.cat(): expected a non-empty list``, ``Kernel size can't be greater than actual input size``,
``ZeroDivisionError``), or returned an empty or NaN result. Each must be a ``ValueError`` naming the argument.
"""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from probconserv_ext import (AttentiveNeuralProcess, FNOEnsemble, HeteroscedasticFNO, LinearConstraint,
                             fit_ensemble, fit_heteroscedastic, fit_neural_process, gaussian_nll, stack_constraints,
                             value_constraint)
from probconserv_ext.models import sample_observations


@pytest.fixture(scope="module")
def anp():
    return AttentiveNeuralProcess(hidden=8, latent=4, n_heads=2, n_layers=2, seed=0)


@pytest.fixture(scope="module")
def ensemble():
    return FNOEnsemble(2, 2, 3, n_modes=4, hidden_channels=4, n_layers=1)


@pytest.fixture(scope="module")
def hetero():
    return HeteroscedasticFNO(2, 3, n_modes=4, hidden_channels=4, n_layers=1)


@settings(max_examples=20, deadline=None)
@given(batch=st.integers(0, 2), n_context=st.integers(0, 3), target_shape=st.lists(st.integers(0, 3), min_size=1,
                                                                                   max_size=2),
       call=st.sampled_from(["predict", "forward", "elbo"]))
def test_neural_process_empty_sets(anp, batch, n_context, target_shape, call):
    """Degenerate sizes: zero fields, zero context points or an empty target set in every ANP entry point."""
    xc, uc = torch.rand(batch, n_context, 2), torch.rand(batch, n_context)
    xt = torch.rand(batch, *target_shape, 2)
    empty = batch == 0 or n_context == 0 or 0 in target_shape
    if call == "elbo" and len(target_shape) != 1:
        target_shape = target_shape[:1]
        xt = torch.rand(batch, *target_shape, 2)
        empty = batch == 0 or n_context == 0 or 0 in target_shape

    def run():
        if call == "predict":
            return anp.predict(xc, uc, xt, n_latent=2, seed=0).mean
        if call == "forward":
            return anp(xc, uc, xt, n_latent=2)[0]
        return anp.elbo_loss(xc, uc, xt, torch.rand(batch, *target_shape))

    if not empty:
        assert bool(torch.isfinite(run()).all())
        return
    name = "x_context" if batch == 0 or n_context == 0 else "x_target"
    with pytest.raises(ValueError, match=f"^{name} must have shape"):
        run()


@pytest.mark.parametrize("shape, name", [((0, 2, 16), "x"), ((2, 2, 0), "x"), ((2, 3, 16), "x"), ((2, 1, 16), "x")])
@pytest.mark.parametrize("which", ["ensemble", "hetero"])
def test_fno_models_empty_or_wrong_inputs(ensemble, hetero, shape, name, which):
    """Degenerate sizes: an empty batch, zero nodes, or a wrong channel count for the FNO-based models."""
    model = ensemble if which == "ensemble" else hetero
    for call in (model.predict, model.forward):
        with pytest.raises(ValueError, match=rf"^{name} must be a tensor of shape \(batch >= 1, in_channels = 2"):
            call(torch.rand(*shape))


@pytest.mark.parametrize("shape", [(2, 0), (2, 3, 0), (2, 0, 5), (1, 4), (0, 4)])
def test_gaussian_from_samples_empty(shape):
    """Degenerate sizes: ensembles with fewer than 2 members, zero nodes or an empty batch dimension."""
    with pytest.raises(ValueError, match="^ens must be a tensor of shape"):
        FNOEnsemble.gaussian_from_samples(torch.rand(*shape), 1e-6)


@pytest.mark.parametrize("inputs, targets, name", [
    ((0, 2, 16), (0, 3, 16), "inputs"), ((4, 2, 0), (4, 3, 0), "inputs"), ((4, 5, 16), (4, 3, 16), "inputs"),
    ((4, 2, 16), (4, 5, 16), "targets"), ((4, 2, 16), (3, 3, 16), "targets")])
@pytest.mark.parametrize("which", ["ensemble", "hetero"])
def test_training_on_empty_or_mismatched_data(ensemble, hetero, inputs, targets, name, which):
    """Degenerate sizes: zero training samples (before: ZeroDivisionError), zero nodes, channel counts that do not
    match the model."""
    fit = fit_ensemble if which == "ensemble" else fit_heteroscedastic
    model = ensemble if which == "ensemble" else hetero
    with pytest.raises(ValueError, match=f"^{name} must be a tensor of shape"):
        fit(model, torch.rand(*inputs), torch.rand(*targets), epochs=1, progress=False)


@pytest.mark.parametrize("fields, kw, name", [
    ((0, 10, 10), {}, "fields"), ((3, 4, 10), {"n_times": 5}, "n_times"), ((3, 10, 4), {"n_points": 5}, "n_points")])
def test_fit_neural_process_empty(fields, kw, name):
    """Degenerate sizes: zero training fields (before: a RuntimeError from random_), more observations than nodes."""
    model = AttentiveNeuralProcess(hidden=4, latent=2, n_heads=1, n_layers=2)
    f = torch.rand(*fields)
    with pytest.raises(ValueError, match=f"^{name} must be"):
        fit_neural_process(model, f, torch.rand(f.shape[2]), torch.rand(f.shape[1]), steps=1, **kw)


def test_sample_observations_empty_batch():
    """Degenerate sizes: observations of an empty batch of fields (before: a reshape error)."""
    with pytest.raises(ValueError, match="^fields must be a tensor of shape"):
        sample_observations(torch.rand(0, 3, 5), 1, 1, None)


@pytest.mark.parametrize("make, name", [
    (lambda: LinearConstraint(torch.zeros(0, 5)), "G"), (lambda: LinearConstraint(torch.ones(1, 0)), "G"),
    (lambda: value_constraint(5, []), "index"), (lambda: value_constraint(0, 0), "n"),
    (lambda: stack_constraints(), "stack_constraints")])
def test_zero_constraints_or_nodes(make, name):
    """Degenerate sizes: zero constraint rows, zero nodes, no constraint to stack."""
    with pytest.raises(ValueError, match=f"^{name}"):
        make()


def test_nll_mean_over_zero_fields():
    """Degenerate sizes: the mean NLL over an empty batch (before: NaN, silently)."""
    dist = Normal(torch.zeros(0, 4), torch.ones(0, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="^target must hold at least one field"):
            gaussian_nll(dist, torch.zeros(0, 4))
    assert gaussian_nll(dist, torch.zeros(0, 4), reduction="sum") == 0
    assert gaussian_nll(dist, torch.zeros(0, 4), reduction="none").shape == (0,)
