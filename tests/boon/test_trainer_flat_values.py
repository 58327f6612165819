"""Boundary values reach a model in neuralop's Trainer with or without a data processor (flat sample keys), and
where they do not, the error says what to pass."""

import warnings

import pytest
import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer
from neuralop.losses import LpLoss
from neuralop.models import FNO, UNO
from neuralop.training import Trainer

from boon_ext import BOONFNO, BOONWrapper, BoundaryDataProcessor, EarlyCheckpointWarning, TargetLoss, boundary_error, flat_key
from boon_ext.datasets import BoundaryProblemDataset, heat_neumann
from boon_strategies import TOL


def _problem():
    return heat_neumann(16, n_points=33, t_final=0.2, diffusivity=0.1, flux_amplitude=(0.5, 2.0), seed=0)


def _fit(model, loader, processor=None, epochs=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model=model, n_epochs=epochs, data_processor=processor, device="cpu", verbose=False)
    loss = TargetLoss(LpLoss(d=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(loader, {"test": loader}, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10),
                      training_loss=loss, eval_losses={"l2": loss})
    # Neither the model nor the loss warns about the flat keys (TargetLoss drops them with boundary_values).
    assert not [w for w in caught if "boundary_values" in str(w.message) or "ignores" in str(w.message)], \
        [str(w.message) for w in caught]
    return model.eval()


def _exact(model, problem):
    with torch.no_grad():
        u = model(problem.x, boundary_values=problem.boundary_values)
    return boundary_error(u, problem.boundary, problem.boundary_values, relative=True)


def test_flat_values_reach_boonfno_through_the_trainer_without_a_processor():
    problem = _problem()
    assert problem.boundary_values  # the heat problem's flux is a per-sample value
    dataset = BoundaryProblemDataset(problem, range(16), flat_values=True)
    assert set(dataset[0]) == {"x", "y"} | {flat_key(k) for k in problem.boundary_values}
    loader = torch.utils.data.DataLoader(dataset, batch_size=8)
    torch.manual_seed(0)
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=16, boundary=problem.boundary)
    before = [p.detach().clone() for p in model.parameters()]
    model = _fit(model, loader)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it trained
    assert _exact(model, problem) < TOL[torch.float32]


@pytest.mark.parametrize("normalise", [False, True])
def test_flat_values_with_the_processor_with_and_without_normalisers(normalise):
    problem = _problem()
    loader = torch.utils.data.DataLoader(BoundaryProblemDataset(problem, range(16), flat_values=True), batch_size=8)
    torch.manual_seed(0)
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=16, boundary=problem.boundary)
    inn = outn = None
    if normalise:
        inn, outn = UnitGaussianNormalizer(dim=[0, 2]), UnitGaussianNormalizer(dim=[0, 2])
        inn.fit(problem.x)
        outn.fit(problem.y)
    processor = BoundaryDataProcessor(inn, outn, boundary=model.boundary_spec)
    model = _fit(model, loader, processor)
    processor.eval()
    sample = processor.preprocess({"x": problem.x, "y": problem.y,
                                   **{flat_key(k): v for k, v in problem.boundary_values.items()}})
    with torch.no_grad():
        out, _ = processor.postprocess(model(**sample), sample)
    # In physical units after the inverse transform: the flat values were normalised like nested ones.
    assert boundary_error(out, problem.boundary, problem.boundary_values, relative=True) < TOL[torch.float32]


def test_wrapper_trains_in_the_trainer_without_a_processor():
    problem = _problem()
    loader = torch.utils.data.DataLoader(BoundaryProblemDataset(problem, range(16), flat_values=True), batch_size=8)
    torch.manual_seed(0)
    uno = UNO(in_channels=1, out_channels=1, hidden_channels=8, n_layers=2, uno_out_channels=[8, 8],
              uno_n_modes=[[6], [6]], uno_scalings=[[1.0], [1.0]], horizontal_skips_map={})
    model = _fit(BOONWrapper(uno, problem.boundary), loader)
    assert _exact(model, problem) < TOL[torch.float32]


@pytest.mark.parametrize("wrap", [False, True])
def test_nested_values_without_a_processor_fail_with_the_line_to_copy(wrap):
    problem = _problem()
    loader = torch.utils.data.DataLoader(BoundaryProblemDataset(problem, range(16)), batch_size=8)
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=problem.boundary)
    if wrap:
        model = BOONWrapper(BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8), problem.boundary)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model=model, n_epochs=1, device="cpu", verbose=False)
    line = "data_processor=BoundaryDataProcessor(None, None, boundary=model.boundary_spec)"
    with pytest.raises(ValueError, match=r"is missing.*given: \[\].*" + line.replace("(", r"\(").replace(")", r"\)")):
        trainer.train(loader, {}, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10),
                      training_loss=TargetLoss(LpLoss(d=1)))


def test_a_value_given_twice_is_refused():
    problem = _problem()
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=problem.boundary)
    key = model.boundary_spec.required_keys[0]
    g = problem.boundary_values[key]
    with pytest.raises(ValueError, match="once"):
        model(problem.x, boundary_values={key: g}, **{flat_key(key): g})
    with pytest.raises(TypeError, match="key must be a str"):
        flat_key(3)


@pytest.mark.parametrize("wrapper", [False, True])
@pytest.mark.parametrize("save_every, warns", [(2, True), (1, False)])
def test_a_trainer_checkpoint_of_epoch_0_warns_when_wrapped(tmp_path, wrapper, save_every, warns):
    # 2 epochs (0 and 1): save_every=2 saves epoch 0 only, save_every=1 saves epoch 1 last.
    problem = _problem()
    loader = torch.utils.data.DataLoader(BoundaryProblemDataset(problem, range(16), flat_values=True), batch_size=8)
    if wrapper:
        model = BOONWrapper(FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8), problem.boundary)
    else:
        model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=problem.boundary)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model=model, n_epochs=2, device="cpu", verbose=False)
    trainer.train(loader, {}, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10),
                  training_loss=TargetLoss(LpLoss(d=1)), save_every=save_every, save_dir=tmp_path)
    load = BOONWrapper.from_checkpoint if wrapper else BOONFNO.from_checkpoint
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load(tmp_path, "model")
    early = [w for w in caught if issubclass(w.category, EarlyCheckpointWarning)]
    assert len(early) == int(warns)
    if warns:
        assert "save_every" in str(early[0].message) and early[0].filename == __file__
    with torch.no_grad():
        assert _exact(loaded, problem) < TOL[torch.float32]
