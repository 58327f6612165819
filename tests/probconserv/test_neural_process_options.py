"""The attentive neural process's reference-parity options: self-attention encoders, dropout (in training and at test
time), the decoder's size, and the training options (constant rate, fixed observations, best-validation checkpoint).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probconserv_ext.models import AttentiveNeuralProcess, fit_neural_process
from probconserv_ext.models.neural_process import _validation

TINY = dict(hidden=8, latent=4, n_heads=2, n_layers=2)
PARITY = dict(TINY, self_attention=True, dropout=0.3, decoder_hidden=12, decoder_layers=3)


def _inputs(batch, n_ctx, n_target, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, n_ctx, 2, generator=g), torch.randn(batch, n_ctx, generator=g),
            torch.rand(batch, n_target, 2, generator=g))


def _fields(n=6, nt=4, nx=7, seed=0):
    return (torch.rand(n, nt, nx, generator=torch.Generator().manual_seed(seed)), torch.linspace(0, 1, nx),
            torch.linspace(0.25, 1, nt))


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_options_build_what_they_say():
    model = AttentiveNeuralProcess(**PARITY, seed=0)
    linears = [m for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [12, 12, 12, 2]
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 1 + 1 + 3   # one per hidden layer: encoders 1 + 1 (n_layers=2), decoder 3
    assert hasattr(model, "det_self_attention") and hasattr(model, "lat_self_attention")
    # the options add modules after the default ones: the default model's weights are a prefix of the state
    default = AttentiveNeuralProcess(**TINY, seed=0)
    plain = AttentiveNeuralProcess(**TINY, seed=0, self_attention=True)
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in default.state_dict().items())
    assert not any(isinstance(m, torch.nn.Dropout) for m in default.modules())


@settings(max_examples=8, deadline=None)
@given(self_attention=st.booleans(), n_ctx=st.integers(2, 7), seed=st.integers(0, 2**31))
def test_the_prediction_does_not_depend_on_the_order_of_the_context(self_attention, n_ctx, seed):
    """A neural process conditions on a set: permuting the context points leaves the prediction unchanged."""
    model = AttentiveNeuralProcess(**dict(PARITY, self_attention=self_attention), seed=seed % 7)
    xc, uc, xt = _inputs(2, n_ctx, 5, seed)
    perm = torch.randperm(n_ctx, generator=torch.Generator().manual_seed(seed))
    a = model.predict(xc, uc, xt, n_latent=3, seed=1)
    b = model.predict(xc[:, perm], uc[:, perm], xt, n_latent=3, seed=1)
    # float32 sums in another order: a few ulps of the outputs (about 1e-7 relative)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.variance, b.variance, rtol=1e-5, atol=1e-6)


def test_test_time_dropout_is_seeded_local_and_restores_the_mode():
    model = AttentiveNeuralProcess(**PARITY, seed=0).eval()
    xc, uc, xt = _inputs(2, 5, 6, 0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    off = model.predict(xc, uc, xt, n_latent=4, seed=3)
    on = model.predict(xc, uc, xt, n_latent=4, seed=3, test_time_dropout=True)
    again = model.predict(xc, uc, xt, n_latent=4, seed=3, test_time_dropout=True)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(on.mean, again.mean) and not torch.allclose(on.mean, off.mean)
    assert not model.training
    model.train()
    # a model left in training mode predicts without dropout unless asked, and stays in training mode
    torch.testing.assert_close(model.predict(xc, uc, xt, n_latent=4, seed=3).mean, off.mean, rtol=0, atol=0)
    assert model.training
    with model.test_time_dropout(torch.Generator().manual_seed(0)):
        m1, _ = model(xc, uc, xt, n_latent=2, generator=torch.Generator().manual_seed(1))
    assert model.training


def test_test_time_dropout_needs_dropout():
    model = AttentiveNeuralProcess(**TINY, seed=0)
    xc, uc, xt = _inputs(1, 3, 2, 0)
    with pytest.raises(ValueError, match="test_time_dropout needs a model built with dropout > 0"):
        model.predict(xc, uc, xt, n_latent=2, seed=0, test_time_dropout=True)
    with pytest.raises(TypeError, match="test_time_dropout"):
        model.predict(xc, uc, xt, n_latent=2, seed=0, test_time_dropout="yes")


@pytest.mark.parametrize("kw, err, match", [
    (dict(dropout=1.0), ValueError, r"dropout must be a rate in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), ValueError, "dropout must be a rate"),
    (dict(dropout=float("nan")), ValueError, "dropout"),
    (dict(dropout="0.1"), TypeError, "dropout"),
    (dict(self_attention="false"), TypeError, "self_attention must be a bool"),
    (dict(decoder_hidden=0), ValueError, "decoder_hidden"),
    (dict(decoder_layers=1.5), TypeError, "decoder_layers"),
])
def test_bad_options_are_refused(kw, err, match):
    with pytest.raises(err, match=match):
        AttentiveNeuralProcess(**TINY, **kw)


def test_training_with_dropout_is_reproducible_and_leaves_the_global_state_alone():
    fields, xs, ts = _fields()
    kw = dict(steps=6, batch_size=3, n_times=2, n_points=3, n_target=5, seed=4, lr=1e-2)
    torch.manual_seed(9)
    state = torch.get_rng_state()
    a, b = AttentiveNeuralProcess(**PARITY, seed=1), AttentiveNeuralProcess(**PARITY, seed=1)
    la = fit_neural_process(a, fields, xs, ts, **kw)
    torch.manual_seed(10)   # another global state: the same training
    lb = fit_neural_process(b, fields, xs, ts, **kw)
    torch.set_rng_state(state)
    assert la == lb and _same_state(a, b)


def test_fixed_observations_reuse_one_pattern_per_function(monkeypatch):
    fields, xs, ts = _fields(n=1)
    seen = []
    original = AttentiveNeuralProcess.elbo_loss

    def spy(self, xc, uc, xt, ut, generator=None):
        seen.append(xc.clone())
        return original(self, xc, uc, xt, ut, generator=generator)

    monkeypatch.setattr(AttentiveNeuralProcess, "elbo_loss", spy)
    kw = dict(steps=5, batch_size=1, n_times=2, n_points=3, n_target=4, seed=0)
    fit_neural_process(AttentiveNeuralProcess(**TINY), fields, xs, ts, fixed_observations=True, **kw)
    assert all(torch.equal(s, seen[0]) for s in seen)
    seen.clear()
    fit_neural_process(AttentiveNeuralProcess(**TINY), fields, xs, ts, **kw)
    assert not all(torch.equal(s, seen[0]) for s in seen)


def test_the_best_validation_weights_are_restored():
    fields, xs, ts = _fields(n=8)
    val, _, _ = _fields(n=3, seed=1)
    history = []
    model = AttentiveNeuralProcess(**PARITY, seed=0)
    # a large constant rate makes the validation loss go up and down
    fit_neural_process(model, fields, xs, ts, steps=12, lr=0.05, batch_size=4, n_times=2, n_points=3, n_target=5,
                       schedule="constant", val_fields=val, val_every=3, val_history=history, seed=0)
    assert [s for s, _ in history] == [3, 6, 9, 12]
    validate = _validation(model, val, (xs, ts), 2, 3, 5, 0, torch.device("cpu"))
    assert validate() == min(v for _, v in history)
    assert not model.training


@pytest.mark.parametrize("kw, err, match", [
    (dict(schedule="step"), ValueError, "schedule must be 'cosine' or 'constant'"),
    (dict(fixed_observations=1), TypeError, "fixed_observations must be a bool"),
    (dict(val_fields=torch.rand(2, 3, 7)), ValueError, "val_fields must be a tensor of shape"),
    (dict(val_fields=torch.full((2, 4, 7), float("nan"))), ValueError, "val_fields"),
    (dict(val_every=0), ValueError, "val_every"),
    (dict(val_history=()), TypeError, "val_history must be a list"),
])
def test_bad_training_options_are_refused(kw, err, match):
    fields, xs, ts = _fields()
    with pytest.raises(err, match=match):
        fit_neural_process(AttentiveNeuralProcess(**TINY), fields, xs, ts, steps=1, n_times=2, n_points=3, **kw)
