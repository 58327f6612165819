"""The paper regime's diagnostics, windows, seeds, shock statistics and positive control (tiny, untrained runs)."""

import json

import pytest


@pytest.fixture(scope="module")
def run(repro, tmp_path_factory):
    out = tmp_path_factory.mktemp("pc_diag")
    res = repro.main(["--regime", "paper", "--quick", "--problems", "stefan", "pme", "--seeds", "0", "1", "--steps",
                      "3", "--n-train", "8", "--n-test", "2", "--n-samples", "10", "--n-latent", "2", "--threads", "1",
                      "--no-progress", "--out", str(out)])
    return res, out


def test_positive_control_reaches_its_prediction(run):
    res, out = run
    controls = res["positive_control"]
    assert {(r["problem"], r["b"]) for r in controls} == {
        (p, b) for p in ("stefan", "pme") for b in ("closed-form total", "grid's total g.u")}
    for r in controls:
        assert r["predicted_gain"] == pytest.approx(3.0, rel=1e-6)
        assert r["achieved_gain"] <= r["predicted_gain"] * (1 + 1e-9)
        # with the grid's own total the layer reaches the bound; the closed-form total adds the truth's quadrature
        # error (0.8% of Stefan's total at 201 nodes), within 5%
        rel = 1e-6 if r["b"] == "grid's total g.u" else 0.05
        assert r["achieved_gain"] == pytest.approx(r["predicted_gain"], rel=rel)
    md = (out / "results_paper.md").read_text()
    assert "Positive control" in md and "predicted gain (bound)" in md
    assert json.loads((out / "results_paper.json").read_text())["positive_control"] == controls


def test_diagnostics_agree_with_the_metrics(run):
    rows = run[0]["rows"]
    by = {(r["problem"], r["window"], r["param"], r["t"], r["seed"], r["method"]): r for r in rows}
    for key, r in by.items():
        if key[-1] != "probconserv":
            continue
        u = by[key[:-1] + ("unconstrained",)]
        # the diagnostics pool the same MSEs that compare_methods reports, and the gain obeys its bound
        assert r["diag_base_mse"] == pytest.approx(u["mse"], rel=1e-9)
        assert r["diag_constrained_mse"] == pytest.approx(r["mse"], rel=1e-9)
        assert r["diag_gain"] <= r["diag_bound"] * (1 + 1e-9)
        assert 0.0 <= r["diag_cosine"] <= 1.0 and 0.0 <= r["diag_variance_share"] <= 1.0
        # reference-parity inference from the same draws: both updates conserve, so both means differ from the base
        assert r["ref_base_mse"] > 0 and r["ref_averaged_mse"] > 0 and r["ref_per_sample_mse"] > 0
        h = by[key[:-1] + ("hardc",)]
        assert h["hardc_gain"] <= h["hardc_bound"] * (1 + 1e-9)
        assert h["hardc_constrained_mse"] == pytest.approx(h["mse"], rel=1e-9)


def test_windows_seeds_and_shock_statistics(run):
    res, out = run
    rows = res["rows"]
    assert {r["seed"] for r in rows} == {0, 1}
    # Stefan has the paper's one window; PME runs in the paper's (0, 1] (headline 0.5) and this project's (0, 0.5]
    assert {r["t_final"] for r in rows if r["problem"] == "stefan"} == {0.1}
    pme = {(r["window"], r["t_final"], r["t"]) for r in rows if r["problem"] == "pme" and r["headline"]}
    assert pme == {("paper", 1.0, 0.5), ("project", 0.5, 0.25)}
    for r in rows:
        if r["problem"] == "stefan":
            assert 0.0 <= r["shock_paper_mean"] <= 1.0
            if r["method"] in ("probconserv", "probconserv+nn"):
                # the reference samples ProbConserv properly: the two ways agree
                assert r["shock_paper_mean"] == r["shock_node_mean"]
    md = (out / "results_paper.md").read_text()
    assert "bound 1/(1-cos^2)" in md and "paper's sampling (std as variance)" in md
    assert "gain, per-draw update then average (reference)" in md
    assert "| pme | t in (0, 1] | m=3 | 0.5 | 2 |" in md and "..", md   # median [min..max] over the two seeds


@pytest.mark.parametrize("argv", [["--regime", "paper", "--seeds", "0", "0"], ["--regime", "paper", "--seeds", "-1"],
                                  ["--regime", "paper", "--windows", "both-ways"]])
def test_bad_seed_and_window_arguments_exit(repro, argv):
    with pytest.raises(SystemExit):
        repro.parse_args(argv)


def test_default_regime_reports_the_bound_and_the_control(repro, tmp_path):
    res = repro.main(["--quick", "--problems", "pme", "--epochs", "2", "--n-train", "4", "--members", "2",
                      "--threads", "1", "--no-progress", "--no-plots", "--out", str(tmp_path)])
    by = {(r["param"], r["model"], r["method"]): r for r in res["rows"]}
    for (param, model, method), r in by.items():
        if method in ("hardc", "probconserv"):
            assert 0.0 <= r["cosine"] <= 1.0 and r["bound"] >= 1.0 - 1e-12
            # in units of the base MSE: MSE(mu~) = 1/bound + (1 - 1/bound) (c/c* - 1)^2
            inv_gain = r["mse"] / by[(param, model, "unconstrained")]["mse"]
            expected = 1 / r["bound"] + (1 - 1 / r["bound"]) * (r["coefficient_ratio"] - 1) ** 2
            assert inv_gain == pytest.approx(expected, rel=1e-6)
    assert [r["predicted_gain"] for r in res["positive_control"]] == pytest.approx([3.0] * 4, rel=1e-6)
    md = (tmp_path / "results.md").read_text()
    assert "ProbConserv's bound 1/(1-cos^2) (cos)" in md and "Positive control" in md
