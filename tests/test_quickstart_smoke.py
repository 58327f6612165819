"""The README's main job runs end to end (tiny size) and shows both methods holding their constraints."""

import contextlib
import io
import json

import pytest


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
