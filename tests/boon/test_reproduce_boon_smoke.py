"""Smoke test of examples/reproduce_boon.py at a tiny size, and checks of its metric helpers."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "reproduce_boon.py"


@pytest.fixture(scope="module")
def repro():
    spec = importlib.util.spec_from_file_location("reproduce_boon", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TINY = dict(
    n_train=8, n_test=4, epochs=1, batch_size=4, seeds=[0], st_seeds=[0], lr=1e-3,
    fno_1d=dict(n_modes=(4,), hidden_channels=8, n_layers=2),
    fno_st=dict(n_modes=(4, 3), hidden_channels=4, n_layers=1),
    n_points=dict(heat=17, stokes=17, stokes_spacetime=9, burgers_periodic=17, burgers_dirichlet=17),
    n_times=5, st_train=8, st_test=4,
)


def test_reproduction_runs_and_boon_holds_boundary_conditions(repro, tmp_path):
    res = repro.run(quick=True, out=tmp_path, config=TINY, progress=False)
    assert {r["problem"] for r in res["runs"]} == set(repro.PROBLEMS)
    assert len(res["runs"]) == len(repro.PROBLEMS) * len(repro.MODELS)
    for r in res["runs"]:
        assert np.isfinite(r["rel_l2"]) and np.isfinite(r["rel_l2_interior"]) and r["rel_l2"] > 0
        if r["model"] != "fno":
            # Exact in exact arithmetic: float64 evaluation leaves only round-off of O(1e-16 / h).
            assert r["boundary_error_float64"] < 1e-9, r
            # float32: round-off of the stored face values, amplified by 4/(2h) for Neumann rows.
            h = 1.0 / (TINY["n_points"][r["problem"]] - 1)
            assert r["boundary_error"] < 64 * np.finfo(np.float32).eps / h, r
    for prob in repro.PROBLEMS:
        s = res["summary"][prob]
        assert s["boon"]["factor"] == pytest.approx(s["fno"]["rel_l2"] / s["boon"]["rel_l2"])
        # An untrained-ish FNO misses non-trivial boundary data by far more than round-off.
        if prob != "burgers_periodic":
            assert s["fno"]["boundary_error"] > 1e-4
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["summary"].keys() == res["summary"].keys()
    table = (tmp_path / "results.md").read_text()
    assert "| heat | BOON-FNO |" in table and "| stokes_spacetime | FNO |" in table
    for prob in repro.PROBLEMS:
        assert (tmp_path / f"{prob}.png").stat().st_size > 1000


def test_fno_baseline_path_runs(repro, tmp_path):
    res = repro.run(problems=["stokes_spacetime"], models=["fno"], quick=True, out=tmp_path,
                    config=TINY, plots=False, progress=False)
    assert [r["model"] for r in res["runs"]] == ["fno"]
    assert "factor" not in res["summary"]["stokes_spacetime"]["fno"]
    assert (tmp_path / "results.md").exists() and (tmp_path / "data").is_dir()


def test_bad_arguments(repro, tmp_path):
    with pytest.raises(ValueError, match="problems"):
        repro.run(problems=["navier_stokes"], out=tmp_path)
    with pytest.raises(ValueError, match="models"):
        repro.run(models=["unet"], out=tmp_path)


# ------------------------------------------------------------------------- metric helpers
@settings(max_examples=20)
@given(n=st.integers(5, 40), g=st.floats(-5, 5), c=st.floats(-3, 3), slope=st.floats(-5, 5))
def test_boundary_residual_is_zero_on_exact_fields_and_sees_violations(repro, n, g, c, slope):
    x = torch.linspace(0, 2, n, dtype=torch.float64)
    # Quadratic u = c + slope x + q x^2 with u'(2) = g: the 2nd-order stencil is exact on quadratics.
    q = (g - slope) / 4
    u = (c + slope * x + q * x**2).view(1, 1, n)
    neu = [{"type": "neumann", "left": slope, "domain": [0, 2]}, {"type": "neumann", "faces": ["right"], "domain": [0, 2]}]
    bv = {"right": torch.tensor([g], dtype=torch.float64)}
    assert repro.boundary_residual(u, neu, bv, (0.0, 2.0)) < 1e-10 * (1 + abs(g) + abs(c) + abs(slope)) * n
    bumped = u.clone()
    bumped[..., -1] += 0.5
    assert repro.boundary_residual(bumped, neu, bv, (0.0, 2.0)) == pytest.approx(1.5 * 0.5 / (2 / (n - 1)), rel=1e-6)
    dir_ = [{"type": "dirichlet", "faces": ["left"]}, {"type": "dirichlet", "right": float(u[0, 0, -1])}]
    assert repro.boundary_residual(u, dir_, {"left": torch.tensor([c], dtype=torch.float64)}, (0.0, 2.0)) < 1e-12 * (1 + abs(c))
    per = [{"type": "periodic"}]
    assert repro.boundary_residual(u, per, {}, (0.0, 2.0)) == pytest.approx(abs(float(u[0, 0, 0] - u[0, 0, -1])), abs=1e-12)


def test_boundary_residual_space_time_faces(repro):
    u = torch.zeros(2, 1, 6, 4)
    u[:, 0, 0, :] = torch.arange(4.0)
    cond = [{"type": "dirichlet", "faces": ["left"], "dim": -2}, {"type": "dirichlet", "right": 0.0, "dim": -2}]
    bv = {"left": torch.arange(4.0).expand(2, 1, 4)}
    assert repro.boundary_residual(u, cond, bv, (0.0, 1.0)) == 0.0
    u[1, 0, -1, 2] = 0.25
    assert repro.boundary_residual(u, cond, bv, (0.0, 1.0)) == 0.25


def test_relative_l2_and_masks(repro):
    y = torch.ones(3, 1, 11)
    pred = y.clone()
    pred[:, :, 0] += 1.0
    interior, near = repro.node_masks(y.shape, band=2)
    assert repro.relative_l2(pred, y) == pytest.approx(1 / np.sqrt(11))
    assert repro.relative_l2(pred, y, interior) == 0.0
    assert interior.sum() == 9 and near.sum() == 4 and not near[..., 0] and near[..., 1] and near[..., 9]
