"""Fast smoke test of experiments/reproduce_probconserv.py."""

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def run(repro, tmp_path_factory):
    out = tmp_path_factory.mktemp("pc")
    res = repro.main(["--quick", "--problems", "stefan", "diffusion", "--epochs", "2", "--n-train", "4",
                      "--members", "2", "--threads", "1", "--no-progress", "--out", str(out)])
    return res, out


def test_outputs_written(run):
    res, out = run
    data = json.loads((out / "results.json").read_text())
    assert data["rows"] == json.loads(json.dumps(res["rows"]))
    md = (out / "results.md").read_text()
    assert "| problem | param | model | method | MSE |" in md and "stefan" in md
    for name in res["meta"]["plots"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = set(res["meta"]["plots"])
    assert {"mass_stefan.png", "profile_stefan_0.6.png", "shock_stefan_0.5.png", "mass_diffusion.png"} <= names


def test_rows_cover_every_method_model_and_parameter(run, repro):
    rows = run[0]["rows"]
    stefan = [r for r in rows if r["problem"] == "stefan"]
    assert len(stefan) == 2 * len(repro.MODELS) * len(repro.METHODS)
    assert {r["param"] for r in stefan} == {0.6, 0.5}
    # the heat solution changes sign: no non-negative variant there
    diffusion = [r for r in rows if r["problem"] == "diffusion"]
    assert {r["method"] for r in diffusion} == set(repro.METHODS) - {"probconserv+nn"}
    for r in stefan:
        assert 0.0 <= r["shock_mean"] <= 1.0 and r["shock_std"] >= 0.0
        assert r["shock_true"] == pytest.approx(repro.get_problem("stefan").shock_position([0.5], r["param"])[0])
    for r in rows:
        assert np.isfinite([r["mse"], r["ce_abs"], r["ll"]]).all()


def test_constrained_methods_conserve_to_round_off_even_untrained(run):
    for r in run[0]["rows"]:
        if r["method"] != "unconstrained":
            # float64 update: relative conservation error at round-off, far below the 1e-8 goal
            assert r["ce_rel_max_over_t"] <= 1e-12, r
    uncon = [r["ce_rel"] for r in run[0]["rows"] if r["method"] == "unconstrained" and r["problem"] == "stefan"]
    assert max(uncon) > 1e-6  # two epochs of training do not conserve by accident


def test_nonnegative_variant_has_nonnegative_mean(run):
    for r in run[0]["rows"]:
        if r["method"] == "probconserv+nn":
            assert r["min_mean"] >= -1e-12


def test_example_uses_the_package_metrics(repro):
    # the metrics live in the package (tested in test_metrics.py), not re-implemented by the script
    import probconserv_ext.metrics as metrics

    assert repro.shock_positions is metrics.shock_positions
    assert repro.compare_methods is metrics.compare_methods and repro.draw_samples is metrics.draw_samples
    for name in ("marginal_ll", "posteriors"):
        assert not hasattr(repro, name)


@pytest.mark.parametrize("argv", [["--members", "1"], ["--epochs", "0"], ["--problems", "burgers"]])
def test_bad_arguments_exit(repro, argv):
    with pytest.raises(SystemExit):
        repro.parse_args(argv)


# ---------------------------------------------------------------- the paper's regime (attentive neural process)
@pytest.fixture(scope="module")
def paper_run(repro, tmp_path_factory):
    out = tmp_path_factory.mktemp("pc_paper")
    res = repro.main(["--regime", "paper", "--quick", "--problems", "stefan", "diffusion", "--steps", "5",
                      "--n-train", "8", "--n-test", "3", "--n-samples", "20", "--n-latent", "4", "--threads", "1",
                      "--no-progress", "--out", str(out)])
    return res, out


def test_paper_regime_outputs(paper_run, repro):
    res, out = paper_run
    data = json.loads((out / "results_paper.json").read_text())
    assert data["rows"] == json.loads(json.dumps(res["rows"]))
    assert data["meta"]["regime"] == "paper" and data["meta"]["config"]["n_test"] == 3
    md = (out / "results_paper.md").read_text()
    assert "### stefan, p* = 0.6, t = 0.05" in md and "paper's rule" in md and "Base model's relative mass error" in md
    rows = res["rows"]
    stefan = [r for r in rows if r["problem"] == "stefan"]
    # two parameters x four methods x three times (0.02, 0.05, 0.08), the middle one the headline
    assert len(stefan) == 2 * len(repro.METHODS) * 3
    assert sorted({r["t"] for r in stefan}) == pytest.approx([0.02, 0.05, 0.08])
    assert [r["t"] for r in stefan if r["headline"]] == pytest.approx([0.05] * 2 * len(repro.METHODS))
    assert {r["param"] for r in stefan} == {0.6, 0.5}
    diffusion = [r for r in rows if r["problem"] == "diffusion"]
    assert {r["param"] for r in diffusion} == {1.0, 5.0}
    assert {r["method"] for r in diffusion} == set(repro.METHODS) - {"probconserv+nn"}
    stefan_problem = repro.get_problem("stefan")
    for r in stefan:
        assert r["shock_true"] == pytest.approx(stefan_problem.shock_position([r["t"]], r["param"])[0])
        for rule in ("node", "cross"):
            assert 0.0 <= r[f"shock_{rule}_mean"] <= 1.0 and r[f"shock_{rule}_std"] >= 0.0
    for r in rows:
        assert np.isfinite([r["mse"], r["ce_abs"], r["ll"], r["base_mass_err"]]).all()
        if r["method"] != "unconstrained":
            assert r["ce_rel"] <= 1e-12, r
        if r["method"] == "probconserv+nn":
            assert r["min_mean"] >= -1e-12


def test_paper_regime_rejects_problems_outside_it(repro):
    with pytest.raises(SystemExit):
        repro.parse_args(["--regime", "paper", "--problems", "advection"])
    assert repro.parse_args(["--regime", "paper"]).problems == ["stefan", "diffusion", "pme"]
    assert "advection" in repro.parse_args([]).problems


# ---------------------------------------------------------------- the reference code's neural process (--anp parity)
PARITY_TINY = ["--regime", "paper", "--quick", "--anp", "parity", "--problems", "stefan", "--steps", "4",
               "--n-train", "6", "--n-test", "2", "--n-samples", "10", "--n-latent", "3", "--batch-size", "3",
               "--threads", "1", "--no-progress"]


def test_parity_configuration_trains_validates_and_measures_test_time_dropout(repro, tmp_path):
    res = repro.main(PARITY_TINY + ["--out", str(tmp_path)])
    cfg = res["meta"]["config"]
    assert cfg["anp"] == "parity" and cfg["self_attention"] and cfg["dropout"] == 0.1
    assert cfg["schedule"] == "constant" and cfg["fixed_observations"] and cfg["batch_size"] == 3
    # the best-validation checkpoint: validations recorded every val_every steps and after the last
    (history,) = res["meta"]["validation_loss"].values()
    assert [s for s, _ in history] == sorted({min(s, 4) for s in range(cfg["val_every"], 4 + cfg["val_every"],
                                                                       cfg["val_every"])})
    heads = [r for r in res["rows"] if r["headline"] and r["method"] == "probconserv"]
    for r in heads:   # the reference's inference, dropout on, beside dropout off, from the same draws' generator
        assert {"ref_base_mse_dropout", "ref_per_sample_mse_dropout"} <= set(r)
        assert r["ref_base_mse_dropout"] != r["ref_base_mse"]
    md = (tmp_path / "results_paper.md").read_text()
    assert "gain, per-draw update, dropout on (the reference's inference)" in md
    # the project's model has no dropout: no dropout columns
    assert "dropout on" not in repro.reference_table([{k: v for k, v in r.items() if "_dropout" not in k}
                                                      for r in res["rows"]])


def test_estimate_times_the_run_without_results(repro, tmp_path):
    res = repro.main(PARITY_TINY + ["--estimate", "2", "--seeds", "0", "1", "--out", str(tmp_path)])
    (row,) = res["rows"]
    assert row["timed_steps"] == 2 and row["steps"] == 4 and row["runs"] == 2 and row["s_per_step"] > 0
    assert row["total_h"] == pytest.approx(2 * row["run_h"])
    assert json.loads((tmp_path / "estimate.json").read_text())["total_h"] == pytest.approx(res["total_h"])
    assert not (tmp_path / "results_paper.json").exists()
    # CPU seconds of the one thread (what an idle core costs), the wall seconds of the same blocks beside them
    assert res["meta"]["clock"] == "CPU seconds of the process" and row["wall_s_per_step"] > 0
    table = repro.estimate_table(res)
    assert "--estimate" not in table and "--anp parity" in table and res["meta"]["commit"] in table


@pytest.mark.parametrize("argv, match", [
    (["--anp", "parity"], "--anp is for --regime paper"),
    (["--estimate", "3"], "--estimate is for --regime paper"),
    (["--regime", "paper", "--device", "tpu9"], "--device must be a torch device"),
    (["--regime", "paper", "--batch-size", "0"], "--batch-size must be >= 1"),
])
def test_bad_paper_arguments_name_the_flag(repro, argv, match, capsys):
    with pytest.raises(SystemExit):
        repro.parse_args(argv)
    assert match in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused_before_training(repro, capsys):
    with pytest.raises(SystemExit):
        repro.parse_args(["--regime", "paper", "--device", "cuda"])
    assert "torch finds no CUDA device" in capsys.readouterr().err
