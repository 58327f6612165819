"""The README's main job runs end to end (tiny size) and shows both methods holding their constraints."""

import json

import pytest


@pytest.fixture(scope="module")
def quickstart(load_example):
    return load_example("quickstart")


def test_quickstart_quick_mode(quickstart, tmp_path, capsys):
    quickstart.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "quickstart.json").read_text())
    # the printed table has a row per model and no missing values
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4 and "nan" not in printed.lower()
    # the trained FNO wrapped without retraining: exact fluxes, interior error unchanged
    wrapped, fno = results["FNO wrapped by BOON"], results["FNO"]
    assert wrapped["boundary_error_relative"] < 1e-5
    assert abs(wrapped["rel_l2_interior"] - fno["rel_l2_interior"]) <= 1e-6 * fno["rel_l2_interior"]
    assert (tmp_path / "quickstart.png").stat().st_size > 10_000
    # BOON: both flux conditions hold to float32 round-off; the unconstrained FNO misses them.
    assert results["BOON-FNO"]["boundary_error_relative"] < 1e-5
    assert results["FNO"]["boundary_error_relative"] > 1e-3
    # ProbConserv: the total heat equals its exact value (float32 output), and the flux rows hold too.
    assert results["FNO + ProbConserv"]["conservation_error"] < 1e-6
    assert results["FNO + ProbConserv"]["boundary_error_relative"] < 1e-5
