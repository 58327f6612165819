"""Smoke test of experiments/estimate_boon_cost.py on a tiny configuration: its extrapolation arithmetic."""


import pytest


@pytest.fixture(scope="module")
def cost(load_experiment):
    return load_experiment("estimate_boon_cost")


def test_estimate_extrapolates_the_timed_steps(cost, tmp_path, monkeypatch):
    tiny = dict(cost.repro.CONFIGS["full"], n_train=10, n_val=3, n_test=2, batch_size=4, seeds=[0, 1, 2],
                max_epochs=7, fno_1d=dict(n_modes=(4,), hidden_channels=4, n_layers=1),
                n_points=dict(cost.repro.CONFIGS["full"]["n_points"], stokes=17, heat=17))
    monkeypatch.setitem(cost.repro.CONFIGS, "full", tiny)
    res = cost.estimate(["stokes", "heat"], ["fno", "boon_hidden"], threads=(1,), steps=1, out=tmp_path,
                        cache_dir=tmp_path / "data")
    rows = {(r["problem"], r["model"]): r for r in res["rows"]}
    assert "not_defined" in rows[("heat", "boon_hidden")]
    for key in [("stokes", "fno"), ("stokes", "boon_hidden"), ("heat", "fno")]:
        r = rows[key]
        t = r["t1"]
        assert r["steps_per_epoch"] == 3  # ceil(10 / 4)
        assert t["epoch_s"] == pytest.approx(3 * t["step_s"] + t["eval_s"])
        assert t["run_h"] == pytest.approx(7 * t["epoch_s"] / 3600)
        assert r["seeds_h"] == pytest.approx(3 * r["run_h"])
    assert res["total_h"] == pytest.approx(sum(r.get("seeds_h", 0) for r in res["rows"]))
    text = (tmp_path / "cost.md").read_text()
    assert "| stokes | boon_hidden | 3 |" in text and "n/a (Dirichlet only)" in text
    with pytest.raises(ValueError, match="steps"):
        cost.estimate(["stokes"], ["fno"], steps=0)
    with pytest.raises(ValueError, match="models"):
        cost.estimate(["stokes"], ["unet"])
