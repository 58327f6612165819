"""Precision and compilation: autocast training, refused half precision and lossy casts, torch.compile."""


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.losses import LpLoss
from neuralop.training import Trainer

from boon_ext import TargetLoss, BOONFNO, BOONTFNO, BoundaryDataProcessor, Dirichlet, Neumann, Periodic, boundary_error
from boon_strategies import TOL, conditions_1d, randomize
from sample_data import Samples


class _Samples(Samples):
    def __init__(self, n, size, keys, seed=0):
        g = torch.Generator().manual_seed(seed)
        super().__init__(torch.randn(n, 1, size, generator=g), torch.randn(n, 1, size, generator=g),
                         {k: torch.randn(n, generator=g) for k in keys})


@settings(max_examples=5)
@given(conditions=conditions_1d(), seed=st.integers(0, 10**6), tfno=st.booleans())
def test_trainer_mixed_precision_trains_and_conditions_stay_exact(conditions, seed, tfno):
    torch.manual_seed(seed)
    cls = BOONTFNO if tfno else BOONFNO
    model = cls(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=6, n_layers=2, boundary=conditions,
                kernel_correction=True)
    data = _Samples(8, 24, model.boundary_spec.required_keys, seed)
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model=model, n_epochs=2, verbose=False, device="cpu", mixed_precision=True, eval_interval=10,
                      data_processor=BoundaryDataProcessor(boundary=model.boundary_spec))
    trainer.train(loader, {}, opt, torch.optim.lr_scheduler.StepLR(opt, 100), training_loss=TargetLoss(LpLoss(d=1)),
                  eval_losses={})
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it trained
    assert all(torch.isfinite(p).all() for p in model.parameters())
    values = {k: v[:4] for k, v in data.values.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):  # CPU autocast: bfloat16
        y = model(data.x[:4], boundary_values=values)
        y.sum().backward()
    # the output is in the model's dtype, where the conditions hold to round-off (exactly for a Dirichlet value)
    assert y.dtype == torch.float32
    assert boundary_error(y, conditions, values, relative=True) < TOL[torch.float32]
    for rule in model.boundary_spec.rules:
        if rule.kind == "dirichlet":
            face = y.select(2, rule.index)[:, 0]
            g = torch.full_like(face, rule.constant[0]) if rule.constant else values[rule.key]
            assert torch.equal(face, g)


def test_half_precision_is_refused_clearly():
    model = BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, boundary=Dirichlet(left=0.0))
    for cast in (model.half, model.bfloat16, lambda: model.to(torch.float16), lambda: model.to("cpu", torch.bfloat16)):
        with pytest.raises(TypeError, match="autocast"):
            cast()
    # a model that reached half precision some other way is refused at the call, not deep in torch
    torch.nn.Module.half(model)
    with pytest.raises(TypeError, match="float32 or float64"):
        model(torch.randn(1, 1, 16).half())


def test_lossy_dtype_cast_is_refused_and_double_is_exact():
    torch.manual_seed(0)
    model = randomize(BOONFNO(n_modes=(6,), in_channels=1, out_channels=1, hidden_channels=4,
                              boundary=Dirichlet(left=0.0)), 0)
    weights = [p.detach().clone() for p in model.parameters()]
    for dtype in (torch.float64, torch.float32):
        with pytest.raises(ValueError, match=r"model\.double\(\)"):
            model.to(dtype)
        with pytest.raises(ValueError, match="imaginary"):
            model.to(device="cpu", dtype=dtype)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))  # refused before any change
    assert model.to("cpu") is model  # moving devices still works
    # a cast that bypassed the check is caught at the call
    lossy = BOONFNO.from_fno(model, boundary=Dirichlet(left=0.0))
    with pytest.warns(UserWarning, match="discards the imaginary part"):  # torch's own warning, then ours
        torch.nn.Module.to(lossy, torch.float64)
    with pytest.raises(ValueError, match=r"real .*model\.double\(\)"):
        lossy(torch.randn(1, 1, 16, dtype=torch.float64))


def _tiny(bc, n_modes, n_layers=2):
    torch.manual_seed(0)
    return randomize(BOONFNO(n_modes=n_modes, in_channels=1, out_channels=1, hidden_channels=4, n_layers=n_layers,
                             boundary=bc, kernel_correction=True), 1)


CASES = [
    ([Dirichlet(faces=["left"]), Neumann(right=0.5)], (4,), (16,)),
    ([Dirichlet(left=0.0, right=1.0, dim=-2), Dirichlet(faces=["left", "right"], dim=-1)], (4, 4), (8, 8)),
    ([Neumann(left=1.0, dim=-2), Periodic(dim=-1)], (4, 4), (8, 8)),
]


def test_compiles_fullgraph():
    # aot_eager traces with dynamo and AOTAutograd as inductor does, without the code generation that takes about
    # a minute on two cores (test_compiles_with_inductor runs the full compiler).
    import torch._dynamo

    bc, n_modes, shape = CASES[0]
    model = _tiny(bc, n_modes, n_layers=1)
    x = torch.randn(2, 1, *shape)
    values = {k: torch.randn(2) for k in model.boundary_spec.required_keys}
    torch._dynamo.reset()
    y = torch.compile(model, fullgraph=True, backend="aot_eager")(x, boundary_values=values)
    torch.testing.assert_close(y, model(x, boundary_values=values), rtol=1e-5, atol=1e-5)
    assert boundary_error(y, bc, values, relative=True) < TOL[torch.float32]
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.fno_blocks.convs.parameters())


@pytest.mark.parametrize("case, grad", [(c, g) for c in range(len(CASES)) for g in (True, False)])
def test_no_graph_breaks(case, grad):
    # Every case, with and without autograd (about 15 s in all on two cores).
    bc, n_modes, shape = CASES[case]
    import torch._dynamo

    model = _tiny(bc, n_modes)
    x = torch.randn(2, 1, *shape)
    values = {k: torch.randn(2) for k in model.boundary_spec.required_keys}
    torch._dynamo.reset()
    with torch.set_grad_enabled(grad):
        explained = torch._dynamo.explain(model)(x, boundary_values=values)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


def test_compiles_with_inductor():
    import torch._dynamo

    bc = Dirichlet(left=0.0, right=1.0)
    model = _tiny(bc, (4,))
    x = torch.randn(2, 1, 16)
    torch._dynamo.reset()
    with pytest.warns(UserWarning, match="complex operators"):  # inductor runs the FFT-domain products eagerly
        y = torch.compile(model, fullgraph=True)(x)
    torch.testing.assert_close(y, model(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(y[:, :, 0], torch.zeros_like(y[:, :, 0])) and torch.equal(y[:, :, -1], torch.ones_like(y[:, :, -1]))
