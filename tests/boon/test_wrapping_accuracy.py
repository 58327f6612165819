"""Wrapping a trained FNO keeps its accuracy: the conditions become exact and the interior error does not grow.

A plain FNO is trained here (a hundred Adam steps) on generated problems with Dirichlet, Neumann and
periodic conditions, in 1-D and on a 2-D space-time grid, then wrapped in memory, from ``save_checkpoint`` and
from a checkpoint written by neuralop's ``Trainer``, with the wrapping defaults.
"""

import copy
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.losses import LpLoss
from neuralop.models import FNO, TFNO

from boon_ext import (
    TargetLoss,
    BOONFNO,
    BOONTFNO,
    BoundaryAccuracyWarning,
    BoundarySpec,
    Dirichlet,
    Neumann,
    Periodic,
    boundary_error,
    finetune_kernel_correction,
    lift_boundary,
    load_ddp_checkpoint,
)
from boon_ext.checkpoint import load_checkpoint
from boon_ext.datasets import burgers_periodic, heat_neumann, stokes_second_problem
from boon_strategies import TOL, call_values, conditions_1d, fno_kwargs, randomize

N_TRAIN, N_TEST = 48, 16


def _problem(name):
    total = N_TRAIN + N_TEST
    if name == "heat":  # Neumann on both faces
        return heat_neumann(total, n_points=33, flux_amplitude=(0.5, 2.0), seed=1)
    if name == "stokes":  # Dirichlet, the wall value given per sample
        return stokes_second_problem(total, n_points=33, viscosity=0.01, seed=1)
    if name == "burgers_periodic":
        return burgers_periodic(total, n_points=33, seed=1)
    if name == "stokes_spacetime":  # 2-D (space, time), Dirichlet on the space axis
        return stokes_second_problem(total, n_points=17, n_times=8, viscosity=0.01, seed=1)
    raise ValueError(name)


def _train(problem, steps=100, tfno=False, seed=0):
    torch.manual_seed(seed)
    n_dim = problem.x.ndim - 2
    cls = TFNO if tfno else FNO
    model = cls(n_modes=(8,) if n_dim == 1 else (6, 4), in_channels=1, out_channels=1, hidden_channels=12,
                n_layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    loss_fn = LpLoss(d=n_dim, p=2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, N_TRAIN, (16,), generator=g)
        loss = loss_fn(model(problem.x[idx]), problem.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


_CACHE = {}


def trained(name, tfno=False):
    """(problem, trained plain model), shared by the tests of this module."""
    if (name, tfno) not in _CACHE:
        problem = _problem(name)
        _CACHE[name, tfno] = (problem, _train(problem, tfno=tfno))
    return _CACHE[name, tfno]


def _time_dim(problem):
    return -1 if problem.x.ndim == 4 else None


def _test_batch(problem):
    idx = torch.arange(N_TRAIN, N_TRAIN + N_TEST)
    return problem.x[idx], problem.y[idx], {k: v[idx] for k, v in problem.boundary_values.items()}


def _rel_l2(pred, y, interior=False):
    if interior:  # every node off the constrained faces of the spatial axis (dim 2)
        pred, y = pred[:, :, 1:-1], y[:, :, 1:-1]
    d = (pred - y).double().flatten(1).norm(dim=1)
    return float((d / y.double().flatten(1).norm(dim=1)).mean())


def _check_keeps_accuracy(plain, wrapped, problem):
    x, y, bv = _test_batch(problem)
    with torch.no_grad():
        p, w = plain(x), wrapped(x, boundary_values=bv)
    # exact conditions (relative residual at float32 round-off), where the plain model misses them
    assert float(boundary_error(w, problem.boundary, bv, relative=True, time_dim=_time_dim(problem))) < TOL[torch.float32]
    assert float(boundary_error(p, problem.boundary, bv, relative=True, time_dim=_time_dim(problem))) > 1e-4
    # no retraining and no loss of accuracy: the interior error is the plain model's (or lower); 1e-6 covers
    # float32 summation-order differences between the wrapper's and neuralop's spectral convolution
    plain_interior, wrapped_interior = _rel_l2(p, y, True), _rel_l2(w, y, True)
    assert wrapped_interior <= plain_interior * (1 + 1e-6) + 1e-7, (plain_interior, wrapped_interior)
    return plain_interior, wrapped_interior


@pytest.mark.parametrize("name", ["heat", "stokes", "burgers_periodic", "stokes_spacetime"])
def test_wrapping_a_trained_fno_in_memory_keeps_its_accuracy(name):
    problem, plain = trained(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundaryAccuracyWarning)  # the default path does not warn
        wrapped = BOONFNO.from_fno(copy.deepcopy(plain), problem.boundary, time_dim=_time_dim(problem))
    assert wrapped.kernel_correction is False
    _check_keeps_accuracy(plain, wrapped, problem)


def test_mixed_dirichlet_neumann_wrapping_keeps_accuracy():
    """Dirichlet on the left face, Neumann on the right, on the heat data (both hold for the exact solution
    up to the solver's error: the left face's Dirichlet value is taken from the target)."""
    problem, plain = trained("heat")
    x, y, bv = _test_batch(problem)
    boundary = [Dirichlet(faces=["left"]), Neumann(faces=["right"], domain=problem.domain)]
    wrapped = BOONFNO.from_fno(copy.deepcopy(plain), boundary)
    values = {"left": y[:, 0, 0], "right": bv["right"]}
    with torch.no_grad():
        p, w = plain(x), wrapped(x, boundary_values=values)
    assert float(boundary_error(w, boundary, values, relative=True)) < TOL[torch.float32]
    assert _rel_l2(w, y, True) <= _rel_l2(p, y, True) * (1 + 1e-6) + 1e-7


def test_wrapping_a_trained_tfno_keeps_its_accuracy():
    problem, plain = trained("stokes", tfno=True)
    wrapped = BOONTFNO.from_fno(copy.deepcopy(plain), problem.boundary)
    _check_keeps_accuracy(plain, wrapped, problem)


def test_wrapping_a_save_checkpoint_file_keeps_its_accuracy(tmp_path):
    problem, plain = trained("heat")
    plain.save_checkpoint(tmp_path, "plain")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundaryAccuracyWarning)
        wrapped = BOONFNO.from_checkpoint(tmp_path, "plain", boundary=problem.boundary)
    _check_keeps_accuracy(plain, wrapped, problem)


def test_wrapping_a_trainer_checkpoint_keeps_its_accuracy(tmp_path):
    """A plain FNO trained by neuralop's Trainer with save_dir/save_every, loaded from the Trainer's files."""
    from neuralop.data.transforms.data_processors import DefaultDataProcessor
    from neuralop.training import Trainer

    problem = _problem("stokes")
    torch.manual_seed(0)
    model = FNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=12, n_layers=2)
    train_ds, test_ds = problem.split(N_TRAIN, N_TEST)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    test_loader = torch.utils.data.DataLoader(test_ds, batch_size=N_TEST)
    loss = LpLoss(d=1, p=2)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    # epochs 0..20, saved after epochs 0, 10 and 20: the files hold the final weights
    trainer = Trainer(model=model, n_epochs=21, device="cpu", data_processor=DefaultDataProcessor(),
                      eval_interval=21, verbose=False)
    # TargetLoss hands the loss only (out, y). The Trainer also calls the model with every sample key, and
    # neuralop's own plain FNO warns that it ignores y and boundary_values: that warning is neuralop's, not ours.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"FNO\.forward\(\) received unexpected keyword arguments")
        trainer.train(loader, {"test": test_loader}, opt, torch.optim.lr_scheduler.StepLR(opt, 10),
                      training_loss=TargetLoss(loss), eval_losses={"l2": TargetLoss(loss)}, save_every=10,
                      save_dir=tmp_path)
    assert (tmp_path / "model_state_dict.pt").exists()
    wrapped = BOONFNO.from_checkpoint(tmp_path, "model", boundary=problem.boundary)
    _check_keeps_accuracy(model.eval(), wrapped, problem)


def test_kernel_correction_on_plain_weights_warns_and_points_to_finetuning(tmp_path):
    problem, plain = trained("stokes")
    with pytest.warns(BoundaryAccuracyWarning, match="finetune_kernel_correction"):
        BOONFNO.from_fno(copy.deepcopy(plain), problem.boundary, kernel_correction=True)
    plain.save_checkpoint(tmp_path, "plain")
    with pytest.warns(BoundaryAccuracyWarning, match="trained without"):
        BOONFNO.from_checkpoint(tmp_path, "plain", boundary=problem.boundary, kernel_correction=True)
    # a BOON checkpoint trained with the correction does not warn
    boon = BOONFNO(n_modes=(8,), in_channels=1, out_channels=1, hidden_channels=4, boundary=problem.boundary,
                   kernel_correction=True)
    boon.save_checkpoint(tmp_path, "boon")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundaryAccuracyWarning)
        again = BOONFNO.from_checkpoint(tmp_path, "boon")
        BOONFNO.from_fno(boon, problem.boundary, kernel_correction=True)
    assert again.kernel_correction is True


def test_every_way_of_putting_plain_weights_into_a_corrected_model_warns(tmp_path):
    problem, plain = trained("stokes")
    arch = dict(n_modes=plain.n_modes, in_channels=1, out_channels=1, hidden_channels=plain.hidden_channels,
                n_layers=plain.n_layers)
    plain.save_checkpoint(tmp_path, "plain")
    for settings in (dict(kernel_correction=True), dict(hidden_values=True),
                     dict(kernel_correction=True, hidden_values=True)):
        names = " and ".join(f"{k}=True" for k in settings)
        # the measured cost is quoted for the kernel correction only; hidden values alone say it is not measured
        cost = "measured 2.5x to 47x" if "kernel_correction" in settings else "is not measured"
        model = BOONFNO(**arch, boundary=problem.boundary, **settings)
        calls = [  # built with the settings and then given plain weights, or wrapped with them
            ("a state dict", lambda: model.load_state_dict(plain.state_dict())),
            ("the checkpoint plain_state_dict.pt", lambda: model.load_checkpoint(tmp_path, "plain")),
            ("a FNO wrapped by from_fno", lambda: BOONFNO.from_fno(copy.deepcopy(plain), problem.boundary, **settings)),
        ]
        if set(settings) == {"kernel_correction"}:  # the checkpoint loaders take this setting only
            calls += [("the checkpoint plain_state_dict.pt",
                       lambda load=load: load(tmp_path, "plain", problem.boundary, kernel_correction=True))
                      for load in (BOONFNO.from_checkpoint, load_ddp_checkpoint, load_checkpoint)]
        for source, call in calls:
            with pytest.warns(BoundaryAccuracyWarning, match=f"{names} on {source}, whose weights") as record:
                call()
            message = str(record[0].message)
            assert cost in message and "finetune_kernel_correction" in message
            # the warning points at the user's line (here the lambda's), not into the package or one frame above
            assert (record[0].filename, record[0].lineno) == (__file__, call.__code__.co_firstlineno)
        # weights saved by a model with the same settings load silently, as does a state dict without a record
        model.save_checkpoint(tmp_path, "same")
        with warnings.catch_warnings():
            warnings.simplefilter("error", BoundaryAccuracyWarning)
            BOONFNO(**arch, boundary=problem.boundary, **settings).load_checkpoint(tmp_path, "same")
            BOONFNO(**arch, boundary=problem.boundary, **settings).load_state_dict(model.state_dict())
            BOONFNO.from_fno(model, problem.boundary)
            bare = plain.state_dict()
            bare.pop("_metadata")
            model.load_state_dict(bare)
    # the default (output enforcement) takes plain weights silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundaryAccuracyWarning)
        BOONFNO(**arch, boundary=problem.boundary).load_checkpoint(tmp_path, "plain")


def test_finetuning_switches_on_the_correction_and_lowers_the_error():
    problem, plain = trained("stokes")
    with pytest.warns(BoundaryAccuracyWarning):
        model = BOONFNO.from_fno(copy.deepcopy(plain), problem.boundary, kernel_correction=True)
    model.kernel_correction = False  # finetune must switch it on
    x, y, bv = _test_batch(problem)
    with torch.no_grad():
        model.kernel_correction = True
        before = _rel_l2(model(x, boundary_values=bv), y, interior=True)  # T2 switched on, not yet fine-tuned
        model.kernel_correction = False
    train_ds, _ = problem.split(N_TRAIN, N_TEST)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    history = finetune_kernel_correction(model, loader, epochs=2, progress=False)
    assert model.kernel_correction is True and len(history) == 2
    with torch.no_grad():
        w = model(x, boundary_values=bv)
    assert float(boundary_error(w, problem.boundary, bv, relative=True)) < TOL[torch.float32]
    assert _rel_l2(w, y, interior=True) < before  # fine-tuning recovers accuracy lost to the switch
    with pytest.raises(ValueError, match="epochs"):
        finetune_kernel_correction(model, loader, epochs=0)
    with pytest.raises(TypeError, match="model must be"):
        finetune_kernel_correction(plain, loader)


# ------------------------------------------------------------------ properties of the wrapping, random weights
@settings(max_examples=15, deadline=None)
@given(data=st.data(), kw=fno_kwargs(), conditions=conditions_1d(), n=st.integers(12, 40))
def test_default_wrapping_is_exact_and_leaves_nodes_away_from_faces_alone(data, kw, conditions, n):
    torch.manual_seed(0)
    base = randomize(FNO(**kw), data.draw(st.integers(0, 10**6)))
    wrapped = BOONFNO.from_fno(base, conditions)
    x = torch.randn(2, kw["in_channels"], n, dtype=torch.float32)
    spec = wrapped.boundary_spec
    values = call_values(data.draw, spec, 2, kw["out_channels"])
    with torch.no_grad():
        p, w = base(x), wrapped(x, boundary_values=values)
    assert float(boundary_error(w, spec, values, relative=True)) < TOL[torch.float32]
    reach = wrapped.lift_width or 1  # nodes next to each face that the output enforcement may change
    scale = p.abs().max().clamp_min(1e-30)
    assert float((w - p)[..., reach:n - reach].abs().max()) <= 1e-5 * float(scale)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), kw=fno_kwargs(), conditions=conditions_1d(), n=st.integers(12, 40))
def test_constructor_default_is_the_default_wrapping(data, kw, conditions, n):
    # A model built from scratch defaults to output enforcement too: with the FNO's weights it is the model that
    # from_fno makes, bit for bit, and the plain FNO away from the faces (to float32 round-off: its layers run the
    # spectral convolution through this package's own transform).
    import inspect

    assert inspect.signature(BOONFNO).parameters["kernel_correction"].default is False
    base = randomize(FNO(**kw), data.draw(st.integers(0, 10**6)))
    model = BOONFNO(**kw, boundary=conditions)
    assert model.kernel_correction is False
    state = base.state_dict()
    state.pop("_metadata", None)
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, kw["in_channels"], n)
    values = call_values(data.draw, model.boundary_spec, 2, kw["out_channels"])
    with torch.no_grad():
        got, wrapped, plain = model(x, boundary_values=values), BOONFNO.from_fno(base, conditions)(
            x, boundary_values=values), base(x)
    assert torch.equal(got, wrapped)
    scale = plain.abs().max().clamp_min(1e-30)
    assert float((got - plain)[..., 1:n - 1].abs().max()) <= 1e-5 * float(scale)


_CONDITIONS_2D = [
    [Dirichlet(left=0.0, right=1.0, dim=-2), Periodic(dim=-1)],
    [Neumann(left=0.5, faces=["left", "right"], dim=-2), Dirichlet(faces=["left"], dim=-1)],
    [Dirichlet(faces=["left", "right"], dim=-2), Neumann(left=0.0, right=-1.0, dim=-1)],
    [Periodic(dim=-2), Periodic(dim=-1)],
]


@settings(max_examples=10, deadline=None)
@given(data=st.data(), conditions=st.sampled_from(_CONDITIONS_2D), tfno=st.booleans(),
       shape=st.tuples(st.integers(8, 20), st.integers(8, 20)))
def test_default_wrapping_in_2d_is_exact_and_keeps_the_interior(data, conditions, tfno, shape):
    """2-D, conditions on both axes (mixed kinds, corners shared): exact, and the interior is the plain model's."""
    base = (TFNO if tfno else FNO)(n_modes=(4, 4), in_channels=1, out_channels=2, hidden_channels=6, n_layers=2)
    randomize(base, data.draw(st.integers(0, 10**6)))
    wrapped = BOONFNO.from_fno(base, conditions)
    x = torch.randn(2, 1, *shape)
    values = call_values(data.draw, wrapped.boundary_spec, 2, 2)
    with torch.no_grad():
        p, w = base(x), wrapped(x, boundary_values=values)
    assert float(boundary_error(w, conditions, values, relative=True)) < TOL[torch.float32]
    scale = float(p.abs().max().clamp_min(1e-30))
    assert float((w - p)[..., 1:-1, 1:-1].abs().max()) <= 1e-5 * scale


@settings(max_examples=20, deadline=None)
@given(data=st.data(), conditions=conditions_1d(), n=st.integers(12, 40), width=st.integers(1, 5),
       two_d=st.booleans())
def test_lift_is_exact_local_and_leaves_exact_fields_alone(data, conditions, n, width, two_d):
    if two_d:  # the same conditions on the first spatial axis, plus periodic or Dirichlet on the second
        conditions = [type(c)(**{k: v for k, v in c.to_config().items() if k not in ("type", "dim")}, dim=-2)
                      for c in conditions]
        conditions.append(data.draw(st.sampled_from([Periodic(dim=-1), Dirichlet(left=0.5, dim=-1)])))
    spec = BoundarySpec(conditions, 2 if two_d else 1)
    m = 2 * width + 1 + data.draw(st.integers(0, 4))  # the second axis must hold two non-overlapping lifts too
    shape = (3, 2, n, m) if two_d else (3, 2, n)
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    u = torch.randn(shape, generator=g, dtype=torch.float64)
    values = call_values(data.draw, spec, 3, 2, face_shape=(m,) if two_d else (), dtype=torch.float64)
    lifted = lift_boundary(u, spec, values, width)
    assert float(boundary_error(lifted, spec, values, relative=True)) < TOL[torch.float64]
    if not two_d:  # one axis: nodes farther than `width` from both faces are untouched
        assert torch.equal(lifted[..., width:n - width], u[..., width:n - width])
    # a field that already satisfies the conditions is left as it is (to round-off)
    again = lift_boundary(lifted, spec, values, width)
    assert torch.allclose(again, lifted, rtol=1e-10, atol=1e-10 * float(lifted.abs().max()))


def test_lift_refuses_bad_widths():
    spec = BoundarySpec(Dirichlet(left=0.0, right=1.0), 1)
    u = torch.randn(1, 1, 9)
    with pytest.raises(ValueError, match="lift_width"):
        lift_boundary(u, spec, width=5)
    with pytest.raises(ValueError, match="lift_width"):
        lift_boundary(u, spec, width=0)
    with pytest.raises(TypeError, match="lift_width"):
        lift_boundary(u, spec, width=2.0)
    with pytest.raises(TypeError, match="lift_width"):
        BOONFNO(n_modes=(4,), in_channels=1, out_channels=1, hidden_channels=4, boundary=spec.conditions,
                lift_width="4")


def test_measurement_script_runs_and_reports_every_mechanism(tmp_path, load_experiment):
    """experiments/wrap_checkpoint_accuracy.py at smoke size: the JSON holds every mechanism, with exact conditions."""
    import json

    module = load_experiment("wrap_checkpoint_accuracy")
    module.main(["--quick", "heat", "--seeds", "0", "--mechanisms", "kernel", "overwrite", "lift2",
                 "--finetune", "heat", "--finetune-epochs", "1", "--out", str(tmp_path)])
    result = json.loads((tmp_path / "wrap_accuracy.json").read_text())
    assert result["command"].startswith("python -m experiments.wrap_checkpoint_accuracy --quick heat --seeds 0")
    assert result["commit"] and "torch" in result["machine"] and result["seconds"] > 0
    per = result["summary"]["heat"]
    assert set(per) == {"plain", "kernel", "overwrite", "lift2"}
    # The script reports the absolute flux residual: the stencil multiplies float32 rounding of u (eps 1.2e-7) by
    # (3 + 4 + 1) / (2h) = 128 at 33 nodes, so exact enforcement shows < 1e-3 for |u| < 60; the plain model > 0.1.
    assert per["plain"]["boundary_error"]["max"] > 0.1
    for mech in ("kernel", "overwrite", "lift2"):
        assert per[mech]["boundary_error"]["max"] < 1e-3
    assert per["overwrite"]["interior"]["median"] <= per["plain"]["interior"]["median"] * (1 + 1e-6) + 1e-7
    curve = result["finetune"]["heat"][0]["curve"]
    assert len(curve) == 2 and all(v == v for v in curve)  # before and after one epoch, no NaN
