"""BOON models train in neuralop's Trainer, with boundary values normalised like the outputs."""

import warnings
from pathlib import Path

import pytest
import torch
from neuralop.data.transforms.normalizers import UnitGaussianNormalizer
from neuralop.losses import LpLoss
from neuralop.training import Trainer

import boon_ext
from boon_ext import BOONFNO, BoundaryDataProcessor, Dirichlet, Neumann, TargetLoss, boundary_error, one_sided_derivative
from sample_data import Samples as _Samples

PLUGIN_DIR = str(Path(boon_ext.__file__).resolve().parent)


def _data(n=48, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0.0, 2.0, n)
    a, b = torch.randn(s, 1, generator=g), torch.randn(s, 1, generator=g)
    x = (a * torch.sin(2 * grid) + b)[:, None, :]
    y = (a * torch.cos(2 * grid) + 3.0 * b + 1.0)[:, None, :]
    h = 2.0 / (n - 1)
    values = {"left": y[:, 0, 0].clone(), "right": one_sided_derivative(y[:, 0], "right", h)}
    return x, y, values


def _boon_training_setup(s):
    """A seeded BOON model (Dirichlet left, Neumann right) with its processor, loader and optimizer."""
    torch.manual_seed(0)
    x, y, values = _data(s=s)
    bc = [Dirichlet(faces=["left"]), Neumann(faces=["right"], domain=(0.0, 2.0))]
    model = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=8, boundary=bc, kernel_correction=True)
    inn, outn = UnitGaussianNormalizer(dim=[0, 2]), UnitGaussianNormalizer(dim=[0, 2])
    inn.fit(x)
    outn.fit(y)
    processor = BoundaryDataProcessor(inn, outn, boundary=model.boundary_spec)
    loader = torch.utils.data.DataLoader(_Samples(x, y, values), batch_size=8)
    return bc, values, model, processor, loader, torch.optim.Adam(model.parameters(), lr=1e-2)

def test_trainer_runs_and_conditions_hold_in_physical_units():
    bc, values, model, processor, loader, opt = _boon_training_setup(s=32)
    trainer = Trainer(model=model, n_epochs=16, data_processor=processor, verbose=False, device="cpu",
                      eval_interval=16)
    loss = TargetLoss(LpLoss(d=1))
    initial = trainer.evaluate({"l2": loss}, loader)["_l2"]
    trainer.train(loader, {"test": loader}, opt, torch.optim.lr_scheduler.StepLR(opt, 100),
                  training_loss=loss, eval_losses={"l2": loss})
    assert trainer.evaluate({"l2": loss}, loader)["_l2"] < 0.9 * initial
    model.eval()
    processor.eval()
    sample = processor.preprocess(next(iter(loader)))
    out, sample = processor.postprocess(model(**sample), sample)
    phys = {k: v[:8] for k, v in values.items()}
    assert boundary_error(out, bc, phys, relative=True) < 1e-5


def _three_epochs(loss):
    """A 3-epoch Trainer run of a BOON model with the plugin's processor; returns the warnings it raised."""
    _, _, model, processor, loader, opt = _boon_training_setup(s=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every occurrence, whatever filters other tests or plugins set
        trainer = Trainer(model=model, n_epochs=3, data_processor=processor, verbose=False, device="cpu",
                          eval_interval=3)
        trainer.train(loader, {"test": loader}, opt, torch.optim.lr_scheduler.StepLR(opt, 100),
                      training_loss=loss, eval_losses={"l2": loss})
    return caught


def _plugin_warnings(caught):
    return [w for w in caught
            if str(w.filename).startswith(PLUGIN_DIR) or "unexpected keyword arguments" in str(w.message)]


def test_trainer_run_with_target_loss_raises_no_plugin_warning():
    caught = _three_epochs(TargetLoss(LpLoss(d=1)))
    assert _plugin_warnings(caught) == [], [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]


def test_bare_lp_loss_warns_per_batch_which_target_loss_removes():
    # The control: without the wrapper, neuralop's LpLoss warns about the sample's x and boundary_values on
    # every batch: 2 training batches in each of 3 epochs, and 2 evaluation batches at the end; so the recording above
    # does see them when they occur.
    caught = _plugin_warnings(_three_epochs(LpLoss(d=1)))
    assert len(caught) == 3 * 2 + 2
    assert all("'x', 'boundary_values'" in str(w.message) for w in caught)


def test_target_loss_passes_the_loss_its_own_keys_and_checks_its_arguments():
    seen = {}

    def loss(y_pred, y, **kwargs):
        seen.update(kwargs)
        return (y_pred - y).abs().sum()

    wrapped = TargetLoss(loss)
    y = torch.randn(2, 1, 8)
    value = wrapped(y + 1.0, y=y, x=torch.zeros(2, 1, 8), boundary_values={"left": torch.zeros(2)},
                    quadrature=0.5)
    assert value == 16.0 and seen == {"quadrature": 0.5}
    assert wrapped.reduction is None and TargetLoss(LpLoss(d=1, reduction="sum")).reduction == "sum"
    with pytest.raises(TypeError, match="target"):
        wrapped(y)
    with pytest.raises(TypeError, match="callable"):
        TargetLoss(3)
    with pytest.raises(TypeError, match="drop"):
        TargetLoss(loss, drop="x")
    with pytest.raises(ValueError, match="'y'"):
        TargetLoss(loss, drop=("x", "y"))


def test_neumann_normalisation_refuses_spatially_varying_std():
    x, y, values = _data()
    bc = Neumann(faces=["right"], domain=(0.0, 2.0))
    outn = UnitGaussianNormalizer(dim=[0])  # per-node statistics
    outn.fit(y)
    processor = BoundaryDataProcessor(None, outn, boundary=bc, n_dim=1)
    sample = {"x": x[:4], "y": y[:4], "boundary_values": {"right": values["right"][:4]}}
    with pytest.raises(ValueError, match="std is constant"):
        processor.preprocess(sample)


def test_dirichlet_normalisation_is_the_output_transform():
    x, y, values = _data()
    outn = UnitGaussianNormalizer(dim=[0])
    outn.fit(y)
    processor = BoundaryDataProcessor(None, outn, boundary=Dirichlet(faces=["left"]), n_dim=1)
    processor.train()
    sample = processor.preprocess({"x": x[:4], "y": y[:4], "boundary_values": {"left": values["left"][:4]}})
    torch.testing.assert_close(sample["boundary_values"]["left"][:, 0, ...].reshape(-1), sample["y"][:, 0, 0])
