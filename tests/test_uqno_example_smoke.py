"""examples/uqno_probconserv.py runs end to end (tiny size): the layer conserves exactly and keeps a band."""

import json

import pytest


@pytest.fixture(scope="module")
def example(load_example):
    return load_example("uqno_probconserv")


@pytest.mark.parametrize("problem, total", [("pme", "grid"), ("diffusion", "closed-form")])
def test_uqno_example_quick_mode(example, problem, total, tmp_path, capsys):
    example.main(["--quick", "--problem", problem, "--total", total, "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "uqno_probconserv.json").read_text())
    table = [line for line in printed.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 3 and "nan" not in printed.lower()
    before = results["UQNO"]
    assert before["conservation_error_max"] > 1e-4  # the barely trained UQNO misses the totals by far
    for name in ("UQNO + ProbConserv", "UQNO + ProbConserv, correlated"):
        # float64 posterior means: the conserved totals hold to round-off
        assert results[name]["conservation_error_max"] < 1e-10
        assert 0.0 <= results[name]["coverage"] <= 1.0
    assert 0.0 <= results["settings"]["correlation"] <= 1.0
    assert results["settings"]["total"] == total and results["settings"]["quadrature_error_max"] >= 0
    # a few epochs say nothing about accuracy or calibration: check only that the coverages are shares of nodes
    assert 0.0 <= before["coverage"] <= 1.0
    assert results["settings"]["calibration_factor"] > 0
    assert (tmp_path / "uqno_probconserv.png").stat().st_size > 10_000
