"""The README's main job runs end to end (tiny size) and shows both methods holding their constraints."""

import contextlib
import io
import json

import pytest
import torch


@pytest.fixture(scope="module")
def run(load_example, tmp_path_factory):
    quickstart = load_example("quickstart")
    out = tmp_path_factory.mktemp("quickstart")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        quickstart.main(["--quick", "--out", str(out)])
    return out, printed.getvalue(), json.loads((out / "quickstart.json").read_text())


def test_prints_one_table_row_per_model_and_draws_both_figures(run):
    out, printed, results = run
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    # the cavity's header and 3 models, the heat problem's header and 4 models; no missing values
    assert len(table) == (1 + 3) + (1 + 4) and "nan" not in printed.lower()
    assert set(results) == {"cavity", "heat"}
    for name in ("quickstart.png", "quickstart_heat.png"):
        assert (out / name).stat().st_size > 10_000


def test_cavity_walls_exact_for_boon_and_missed_by_the_fno(run):
    cavity = run[2]["cavity"]
    # Dirichlet walls by output enforcement: the wall nodes are the prescribed values, bit for bit
    for name in ("BOON-FNO", "FNO wrapped by BOON"):
        assert cavity[name]["boundary_error"] == 0.0 and cavity[name]["rel_l2_walls"] == 0.0
    assert cavity["FNO"]["boundary_error"] > 1e-3 and 0.0 < cavity["FNO"]["share_walls"] < 1.0
    # wrapping changes the wall nodes only: the interior error is the FNO's
    fno, wrapped = cavity["FNO"], cavity["FNO wrapped by BOON"]
    assert wrapped["rel_l2_interior"] == pytest.approx(fno["rel_l2_interior"], rel=1e-6)
    assert len(fno["rel_l2_over_time"]) == 4


def test_heat_fluxes_and_total_exact(run):
    heat = run[2]["heat"]
    # the trained FNO wrapped without retraining: exact fluxes, interior error unchanged
    wrapped, fno = heat["FNO wrapped by BOON"], heat["FNO"]
    assert wrapped["boundary_error_relative"] < 1e-5
    assert abs(wrapped["rel_l2_interior"] - fno["rel_l2_interior"]) <= 1e-6 * fno["rel_l2_interior"]
    # BOON: both flux conditions hold to float32 round-off; the unconstrained FNO misses them.
    assert heat["BOON-FNO"]["boundary_error_relative"] < 1e-5
    assert heat["FNO"]["boundary_error_relative"] > 1e-3
    # ProbConserv: the total heat equals its exact value (float32 output), and the flux rows hold too.
    assert heat["FNO + ProbConserv"]["conservation_error"] < 1e-6
    assert heat["FNO + ProbConserv"]["boundary_error_relative"] < 1e-5


@pytest.fixture(scope="module")
def quickstart(load_example):
    return load_example("quickstart")


def test_wall_mask_is_the_outer_ring_at_every_frame(quickstart):
    mask = quickstart.wall_mask((2, 3, 6, 6, 4))
    assert mask.shape == (2, 3, 6, 6, 4)
    ring = torch.ones(6, 6, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    assert torch.equal(mask, ring[None, None, :, :, None].expand(2, 3, 6, 6, 4))
    assert int(ring.sum()) == 20  # 4 * 6 - 4 corners counted once


def test_cavity_metrics_on_a_known_error(quickstart):
    from boon_ext import Dirichlet

    torch.manual_seed(0)
    walls = quickstart.wall_mask((3, 2, 6, 6, 4))
    y = torch.randn(3, 2, 6, 6, 4) * ~walls  # a target that meets its walls (0 there)
    # error 2 at the wall nodes and 1 inside: per sample ||e_walls||^2 + ||e_inside||^2 = ||e||^2, and the pooled
    # share at the walls is 4 * 20 / (4 * 20 + 16) (20 wall nodes and 16 inside per frame and channel)
    u = y + torch.where(walls, 2.0, 1.0)
    boundary = [Dirichlet(dim=-3), Dirichlet(dim=-2)]
    values = {k: torch.zeros(3, 2, 6, 4) for k in ("left0", "right0", "left1", "right1")}
    r = quickstart.cavity_metrics(u, y, values, boundary)
    norm = y.flatten(1).norm(dim=1)
    assert r["rel_l2_walls"] == pytest.approx(float((2 * (20 * 2 * 4) ** 0.5 / norm).mean()), rel=1e-5)
    assert r["rel_l2_interior"] == pytest.approx(float(((16 * 2 * 4) ** 0.5 / norm).mean()), rel=1e-5)
    assert r["share_walls"] == pytest.approx(80 / 96, rel=1e-6)
    assert r["wall_node_fraction"] == pytest.approx(20 / 36)
    per_frame = ((u - y)[..., 0].flatten(1).norm(dim=1) / y[..., 0].flatten(1).norm(dim=1)).mean()
    assert len(r["rel_l2_over_time"]) == 4 and r["rel_l2_over_time"][0] == pytest.approx(float(per_frame), rel=1e-5)
    # the wall-value error: the largest |u - g| at the faces, g = 0 here
    assert r["boundary_error"] == pytest.approx(float((u * walls).abs().max()), rel=1e-6)


@pytest.mark.parametrize("time_dim", [None, -1])
def test_paired_models_start_from_the_same_weights(quickstart, time_dim, capsys):
    from boon_ext import Dirichlet

    n_modes = (4, 3) if time_dim else (4,)
    arch = dict(n_modes=n_modes, in_channels=1, out_channels=1, hidden_channels=4, n_layers=2)
    fno, boon = quickstart.paired_models(arch, [Dirichlet(dim=-2 if time_dim else -1)], seed=3, time_dim=time_dim)
    x = torch.randn(2, 1, 8, 6) if time_dim else torch.randn(2, 1, 8)
    boon_state = boon.state_dict()
    for k, v in fno.state_dict().items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, boon_state[k]), k
    # the same weights away from the walls: the BOON output differs from the FNO's at the face nodes only
    values = {"left": torch.zeros(2, 1, 6) if time_dim else torch.zeros(2), "right": torch.zeros(2, 1, 6) if time_dim
              else torch.zeros(2)}
    with torch.no_grad():
        a, b = fno(x), boon(x, boundary_values=values)
    inner = (slice(None), slice(None), slice(1, -1))
    assert torch.allclose(a[inner], b[inner], atol=1e-6) and not torch.allclose(a, b)
    again, _ = quickstart.paired_models(arch, [Dirichlet(dim=-2 if time_dim else -1)], seed=3, time_dim=time_dim)
    again_state = again.state_dict()
    assert all(torch.equal(v, again_state[k]) for k, v in fno.state_dict().items() if isinstance(v, torch.Tensor))


def test_seed_reaches_both_problems_initial_weights_and_batches(quickstart, tmp_path, monkeypatch, capsys):
    seen = []
    pair, train = quickstart.paired_models, quickstart.train

    def recording_pair(arch, boundary, seed, time_dim=None):
        seen.append(("weights", seed))
        return pair(arch, boundary, seed, time_dim)

    def recording_train(*args, **kwargs):
        seen.append(("batches", kwargs["seed"]))
        return train(*args, **kwargs)

    monkeypatch.setattr(quickstart, "paired_models", recording_pair)
    monkeypatch.setattr(quickstart, "train", recording_train)
    quickstart.main(["--quick", "--seed", "5", "--out", str(tmp_path)])
    # the cavity, then the heat problem: one pair of initial weights and two trainings each
    assert seen == [("weights", 5), ("batches", 5), ("batches", 5)] * 2
