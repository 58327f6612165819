"""Smoke test of experiments/reproduce_boon.py at a tiny size, and checks of its metric helpers."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def repro(load_experiment):
    return load_experiment("reproduce_boon")


TINY = dict(
    n_train=8, n_val=4, n_test=4, st_train=8, st_val=4, st_test=4, batch_size=4, seeds=[0, 1],
    max_epochs=2, step_size=1, gamma=0.5, lr=1e-3, weight_decay=1e-4, patience=1, tol=0.01,
    fno_1d=dict(n_modes=(4,), hidden_channels=8, n_layers=2),
    fno_st=dict(n_modes=(4, 3), hidden_channels=4, n_layers=2),
    n_points=dict(heat=17, stokes=17, stokes_spacetime=10, burgers_periodic=17, burgers_dirichlet=17, stokes_nu001=17),
    n_times=5, checkpoint_every=0,
)
DIRICHLET = {"stokes", "stokes_spacetime", "burgers_dirichlet", "stokes_nu001"}


@pytest.fixture(scope="module")
def tiny_run(repro, tmp_path_factory):
    out = tmp_path_factory.mktemp("boon_tiny")
    return out, repro.run(quick=True, out=out, config=TINY, verbose=False)


def test_reproduction_runs_every_variant_and_boon_holds_boundary_conditions(repro, tiny_run):
    out, res = tiny_run
    trained = [r for r in res["runs"] if "not_defined" not in r]
    # The per-layer variant is defined on the Dirichlet problems only; every other pair trains for every seed.
    expected = {(p, m, s) for p in repro.PROBLEMS for m in repro.MODELS for s in TINY["seeds"]
                if m != "boon_hidden" or p in DIRICHLET}
    assert {(r["problem"], r["model"], r["seed"]) for r in trained} == expected
    skipped = {(r["problem"], r["model"]) for r in res["runs"] if "not_defined" in r}
    assert skipped == {("heat", "boon_hidden"), ("burgers_periodic", "boon_hidden")}
    for r in trained:
        assert np.isfinite(r["rel_l2"]) and np.isfinite(r["rel_l2_interior"]) and r["rel_l2"] > 0
        assert r["epochs"] == TINY["max_epochs"] == len(r["train_loss"]) == len(r["test_rel_l2"])
        assert isinstance(r["converged"], bool)
        if r["model"] != "fno":
            # Exact in exact arithmetic: float64 evaluation leaves only round-off of O(1e-16 / h).
            assert r["boundary_error_float64"] < 1e-9, r
            # float32: round-off of the stored face values, amplified by 4/(2h) for Neumann rows.
            h = 1.0 / (TINY["n_points"][r["problem"]] - 1)
            assert r["boundary_error"] < 64 * np.finfo(np.float32).eps / h, r
    for prob in repro.PROBLEMS:
        s = res["summary"][prob]
        per_seed = [fno["rel_l2"] / b["rel_l2"] for fno in trained for b in trained
                    if fno["problem"] == b["problem"] == prob and fno["model"] == "fno" and b["model"] == "boon"
                    and fno["seed"] == b["seed"]]
        assert s["boon"]["factor"]["median"] == pytest.approx(float(np.median(per_seed)))
        assert s["boon"]["factor"]["min"] == pytest.approx(min(per_seed))
        vals = [r["rel_l2"] for r in trained if r["problem"] == prob and r["model"] == "fno"]
        assert s["fno"]["rel_l2"] == pytest.approx(dict(median=np.median(vals), min=min(vals), max=max(vals)))
        # An untrained-ish FNO misses non-trivial boundary data by far more than round-off.
        if prob != "burgers_periodic":
            assert s["fno"]["boundary_error"] > 1e-4
    written = json.loads((out / "results.json").read_text())
    assert written["summary"].keys() == res["summary"].keys()
    table = (out / "results.md").read_text()
    assert "Commit: " in table and "Command: " in table
    assert "| heat | BOON (T2 + T1 in every layer) | - | n/a" in table and "| stokes_spacetime | FNO | 2 |" in table
    # Two seeds: the default-selection rule gives no verdict and chooses nothing.
    assert "## Default chosen by the rule" in table and "**No default chosen yet.**" in table
    assert written["decision"]["default"] is None
    assert set(written["decision"]["verdicts"]["boon"].values()) == {"pending"}
    assert all(r["commit"] == res["commit"] for r in trained)  # taken when the call started; the tree is unchanged
    # Each run names the processor and torch's kernel instruction set: seeded runs agree bit for bit only on
    # the same kind of machine.
    assert all(torch.backends.cpu.get_cpu_capability() in r["machine"] for r in trained)
    for prob in repro.PROBLEMS:
        assert (out / f"{prob}.png").stat().st_size > 1000
        assert (out / f"curves_{prob}_fno.png").stat().st_size > 1000


def test_boundary_values_come_from_the_target(repro, tmp_path):
    for prob in DIRICHLET:
        problem, diff = repro.make_problem(prob, dict(repro.CONFIGS["quick"], **TINY), tmp_path)
        assert [c["type"] for c in problem.boundary] == ["dirichlet"]
        assert problem.boundary[0]["faces"] == ["left", "right"]
        for side, idx in (("left", 0), ("right", -1)):
            g = problem.boundary_values[side]
            face = problem.y.select(2, idx)[:, 0]
            assert torch.equal(g.reshape(face.shape), face)
        assert diff < 1e-6  # the generators' own wall values agree with their targets
    problem, diff = repro.make_problem("heat", dict(repro.CONFIGS["quick"], **TINY), tmp_path)
    assert problem.boundary[0]["type"] == "neumann" and diff == 0.0


def test_resume_keeps_finished_runs_and_continues_interrupted_ones(repro, tmp_path, monkeypatch, capsys):
    cfg = dict(TINY, seeds=[0], max_epochs=3, checkpoint_every=1)
    kw = dict(problems=["stokes"], models=["boon_hidden"], quick=True, config=cfg, plots=False, verbose=False)
    whole = repro.run(out=tmp_path / "whole", **kw)["runs"][0]

    real_save = torch.save
    calls = []

    def save_then_stop(obj, f, *a, **k):
        # The session ends while the second checkpoint is being written: the first (epoch 1) is in place.
        real_save(obj, f, *a, **k)
        calls.append(f)
        if len(calls) == 2:
            raise KeyboardInterrupt

    runs = {split: tmp_path / split / "runs" for split in ("split", "legacy")}
    for split, runs_dir in runs.items():
        monkeypatch.setattr(torch, "save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            repro.run(out=tmp_path / split, **kw)
        monkeypatch.setattr(torch, "save", real_save)
        assert len(calls) == 2 and not (runs_dir / "stokes_boon_hidden_s0.json").exists()
        calls.clear()
        ckpt = runs_dir / "stokes_boon_hidden_s0.ckpt.pt"
        assert torch.load(ckpt, weights_only=True)["epoch"] == 1
        if split == "legacy":  # written before min_epochs existed: resumed all the same
            state = torch.load(ckpt, weights_only=True)
            state["key"] = repro.resumable_keys(repro.make_config(quick=True, config=cfg), "stokes", "boon_hidden",
                                                "paper")[1]
            real_save(state, ckpt)
        assert Path(str(ckpt) + ".tmp").exists()  # the checkpoint being written when the session ended
        capsys.readouterr()
        # The legacy split resumes without writing checkpoints (not part of the fingerprint), so only the finished
        # run's clean-up removes that file.
        resume_kw = dict(kw, verbose=True, config=dict(cfg, checkpoint_every=0 if split == "legacy" else 1))
        resumed = repro.run(out=tmp_path / split, resume=True, **resume_kw)["runs"][0]
        assert "resumed from stokes_boon_hidden_s0.ckpt.pt at epoch 1" in capsys.readouterr().out
        # Resumed from epoch 1 with the optimizer, scheduler and shuffling state: the same run, bit for bit.
        assert resumed["train_loss"] == whole["train_loss"] and resumed["rel_l2"] == whole["rel_l2"]
        assert not list(runs_dir.glob("*.ckpt.pt*"))  # the checkpoint and the one being written are gone
    # A finished run is kept, not retrained; changed settings retrain it.
    path = tmp_path / "split" / "runs" / "stokes_boon_hidden_s0.json"
    stamp = path.stat().st_mtime_ns
    again = repro.run(out=tmp_path / "split", resume=True, **kw)
    assert path.stat().st_mtime_ns == stamp and again["runs"][0]["rel_l2"] == whole["rel_l2"]
    # --report-only trains nothing (here: not even the seed that has no run yet) and reports the finished run.
    report = repro.run(out=tmp_path / "split", report_only=True, **dict(kw, seeds=[0, 1]))
    assert path.stat().st_mtime_ns == stamp and [r["rel_l2"] for r in report["runs"]] == [whole["rel_l2"]]
    assert not (tmp_path / "split" / "runs" / "stokes_boon_hidden_s1.json").exists()
    # ... and still checks the reported problem's data (the values taken from the targets are the walls' own).
    assert list(report["data_checks"]) == ["stokes"]
    assert report["data_checks"]["stokes"]["target_vs_generator_face_values"] == 0.0
    changed = repro.run(out=tmp_path / "split", resume=True, **dict(kw, config=dict(cfg, lr=2e-3)))
    assert path.stat().st_mtime_ns != stamp and len(changed["runs"]) == 1


def test_parallel_jobs_give_the_serial_numbers(repro, tmp_path, monkeypatch):
    # Worker processes import train_one's module by name; _train_in_parallel puts the repository on the path
    # (restored).
    monkeypatch.setattr(sys, "path", list(sys.path))
    kw = dict(problems=["heat", "stokes"], models=["fno", "boon_output"], quick=True, plots=False, verbose=False,
              config=dict(TINY, seeds=[0]))
    serial = repro.run(out=tmp_path / "serial", **kw)
    parallel = repro.run(out=tmp_path / "parallel", jobs=2, threads_per_job=1, **kw)
    by_name = {(r["problem"], r["model"]): r for r in serial["runs"]}
    assert len(parallel["runs"]) == len(by_name) == 4
    for r in parallel["runs"]:
        s = by_name[(r["problem"], r["model"])]
        assert r["train_loss"] == s["train_loss"] and r["rel_l2"] == s["rel_l2"]
    assert not list((tmp_path / "parallel" / "runs").glob("*.claim"))
    for bad in (dict(jobs=0), dict(jobs=2, threads_per_job=0)):
        with pytest.raises(ValueError, match=next(iter(k for k in bad if not bad[k]))):
            repro.run(out=tmp_path / "bad", **dict(kw, **bad))


def test_command_line_jobs_run_in_worker_processes(tmp_path):
    # The script run as a program: its workers import train_one's module (experiments.boon_campaign.campaign).
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "experiments.reproduce_boon", "--quick", "--problems", "heat", "--models", "fno,boon_output", "--seeds",
           "0", "--jobs", "2", "--threads", "1", "--no-plots", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["heat_boon_output_s0.json", "heat_fno_s0.json"]
    assert "| heat | BOON (output T1 only) | 1 |" in (tmp_path / "results.md").read_text()


def test_a_claimed_run_is_skipped_and_a_stale_claim_taken_over(repro, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    first = repro.claim_run(runs, "heat_fno_s0")
    assert first is not None and json.loads(first.read_text())["pid"] == os.getpid()
    assert repro.claim_run(runs, "heat_fno_s0") is None  # held by a live process (this one)
    # A run held by this process is skipped by run(), which trains the rest.
    res = repro.run(problems=["heat"], models=["fno", "boon_output"], quick=True, out=tmp_path, plots=False,
                    verbose=False, config=dict(TINY, seeds=[0]))
    assert [r["model"] for r in res["runs"]] == ["boon_output"]
    first.unlink()
    # A claim whose process has ended on this host is taken over; one from another host is respected.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    first.write_text(json.dumps(dict(pid=int(dead.stdout), host=platform.node())))
    assert repro.claim_run(runs, "heat_fno_s0") == first
    first.write_text(json.dumps(dict(pid=int(dead.stdout), host=platform.node() + "-elsewhere")))
    assert repro.claim_run(runs, "heat_fno_s0") is None
    # A run listed as pending but finished by another process in the meantime is kept, not retrained.
    done = runs / "heat_boon_output_s0.json"
    stamp = done.stat().st_mtime_ns
    job = dict(prob="heat", model="boon_output", seed=0, cfg=dict(repro.CONFIGS["quick"], **dict(TINY, seeds=[0])),
               schedule="paper", runs_dir=str(runs), cache_dir=str(tmp_path / "data"), device="cpu", resume=True,
               verbose=False)
    assert repro.train_one(job) == "heat_boon_output_s0" and done.stat().st_mtime_ns == stamp


def test_converge_schedule_stops_on_the_criterion(repro, tmp_path):
    assert repro.convergence([1.0, 0.5, 0.499], patience=1, tol=0.01) == (True, pytest.approx(0.002))
    assert repro.convergence([1.0, 0.5], patience=1, tol=0.01)[0] is False
    assert repro.convergence([1.0], patience=1, tol=0.01) == (False, None)
    cfg = dict(TINY, seeds=[0], max_epochs=6, patience=1, tol=10.0)  # any window meets a 1000% threshold
    res = repro.run(problems=["heat"], models=["fno"], quick=True, out=tmp_path, config=cfg, plots=False,
                    verbose=False, schedule="converge")
    r = res["runs"][0]
    assert r["converged"] and r["stopped_early"] and r["epochs"] == 2
    # Not before min_epochs, however early the criterion holds.
    res = repro.run(problems=["heat"], models=["fno"], quick=True, out=tmp_path / "min", plots=False,
                    verbose=False, schedule="converge", config=dict(cfg, min_epochs=4))
    r = res["runs"][0]
    assert r["converged"] and r["stopped_early"] and r["epochs"] == 4


def test_a_diverged_epoch_does_not_replace_the_best_validation_error(repro):
    nan, inf = float("nan"), float("inf")
    assert repro.best_so_far([], 0.3) == 0.3
    assert repro.best_so_far([0.3], 0.2) == 0.2 and repro.best_so_far([0.3], 0.4) == 0.3
    assert repro.best_so_far([0.3], nan) == 0.3 and repro.best_so_far([0.3], inf) == 0.3
    # Non-finite only until the first finite error.
    assert np.isnan(repro.best_so_far([], nan)) and repro.best_so_far([nan], 0.9) == 0.9


def test_report_states_the_training_time_of_the_finished_runs(repro, tiny_run):
    runs = [dict(train_seconds=1800.0, threads=1), dict(train_seconds=5400.0), dict(not_defined="n/a")]
    line = repro.training_time_line(runs)
    assert "over the 2 finished runs: 2.0 h" in line and "threads per run: 1; 1 earlier runs did not" in line
    out, result = tiny_run
    hours = sum(r["train_seconds"] for r in result["runs"] if "not_defined" not in r) / 3600
    assert f"finished runs: {hours:.1f} h of optimizer steps" in (out / "results.md").read_text()


def test_verify_json_of_the_earlier_format_keeps_its_rows_with_the_check_that_made_them(repro):
    old = dict(command="c0", commit="a", machine="m", rows=[dict(name="x_s0", identical=True),
                                                          dict(name="y_s0", identical=True)])
    new = repro.merge_verify(old, [dict(name="y_s0", identical=False)], "c1", "b", "m")
    assert new["rows"] == [dict(name="x_s0", identical=True, command="c0", commit="a", machine="m"),
                           dict(name="y_s0", identical=False, command="c1", commit="b", machine="m")]
    assert new["last_check"] == dict(command="c1", commit="b", machine="m")
    assert repro.merge_verify(None, [], "c", "b", "m")["rows"] == []


def test_runs_recorded_before_min_epochs_are_kept_only_where_the_rule_changes_nothing(repro, tmp_path):
    cfg = dict(repro.CONFIGS["quick"], **dict(TINY, seeds=[0], min_epochs=5))
    legacy = repro.run_key(cfg, "heat", "fno", "converge", legacy=True)
    assert legacy != repro.run_key(cfg, "heat", "fno", "converge")
    cases = {"ran_out": (8, False, True), "late_stop": (5, True, True), "early_stop": (4, True, False)}
    for name, (epochs, stopped, kept) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(dict(key=legacy, epochs=epochs, stopped_early=stopped, rel_l2=0.5)))
        got = repro.finished_run(path, cfg, "heat", "fno", "converge")
        assert (got is not None) == kept, name
        on_disk = json.loads(path.read_text())
        if kept:  # the fingerprint is brought up to date in the file, the old one kept beside it
            assert on_disk["key"] == repro.run_key(cfg, "heat", "fno", "converge") and on_disk["key_before"] == legacy
        else:
            assert on_disk["key"] == legacy
    other = tmp_path / "other.json"  # another legacy setting (a different lr) is never taken
    other.write_text(json.dumps(dict(key=repro.run_key(dict(cfg, lr=9.0), "heat", "fno", "converge", legacy=True),
                                     epochs=8, stopped_early=False)))
    assert repro.finished_run(other, cfg, "heat", "fno", "converge") is None


def test_fno_baseline_path_runs(repro, tmp_path):
    res = repro.run(problems=["stokes_spacetime"], models=["fno"], quick=True, out=tmp_path,
                    config=dict(TINY, seeds=[0]), plots=False, verbose=False)
    assert [r["model"] for r in res["runs"]] == ["fno"]
    assert "factor" not in res["summary"]["stokes_spacetime"]["fno"]
    assert (tmp_path / "results.md").exists() and (tmp_path / "data").is_dir()


def test_bad_arguments(repro, tmp_path):
    with pytest.raises(ValueError, match="problems"):
        repro.run(problems=["navier_stokes"], out=tmp_path)
    with pytest.raises(ValueError, match="models"):
        repro.run(models=["unet"], out=tmp_path)
    with pytest.raises(ValueError, match="schedule"):
        repro.run(schedule="cosine", out=tmp_path)


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
    # A first-order condition: the two-point difference misses the quadratic's slope by |q| h at either face.
    first = [dict(c, order=1) for c in neu]
    h = 2 / (n - 1)
    assert repro.boundary_residual(u, first, bv, (0.0, 2.0)) == pytest.approx(abs(q) * h, rel=1e-6, abs=1e-9 * n)
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


def test_config_overrides(repro):
    full = repro.CONFIGS["full"]
    got = repro.parse_overrides(["n_points.stokes_spacetime=129", "fno_st.n_modes=[12, 11]", "lr=0.002"], full)
    assert got["n_points"]["stokes_spacetime"] == 129 and got["n_points"]["heat"] == full["n_points"]["heat"]
    assert got["fno_st"]["n_modes"] == (12, 11) and got["lr"] == 0.002
    assert full["n_points"]["stokes_spacetime"] == 501  # the mode's configuration is left alone
    for bad, match in [("lr", "key=value"), ("nope=1", "unknown key"), ("n_points.mars=3", "unknown key"),
                       ("lr=fast", "not JSON")]:
        with pytest.raises(ValueError, match=match):
            repro.parse_overrides([bad], full)


def test_status_lists_finished_training_interrupted_and_pending_runs(repro, tiny_run, tmp_path, capsys,
                                                                    monkeypatch):
    import shutil

    src, res = tiny_run
    shutil.copytree(src / "runs", tmp_path / "runs")  # no data: --status reads run files, claims and checkpoints
    cfg = repro.make_config(quick=True, config=TINY, seeds=[0, 1, 2])
    problems, models = ["heat", "stokes"], ["fno", "boon_hidden"]
    rows = {r["name"]: r for r in repro.campaign_status(tmp_path, problems, models, cfg, "paper")}
    assert list(rows) == [f"{p}_{m}_s{s}" for s in (0, 1, 2) for m in models for p in problems]
    done = {(r["problem"], r["model"], r["seed"]): r for r in res["runs"]}
    for s in (0, 1):
        assert rows[f"stokes_fno_s{s}"]["state"] == "finished"
        assert rows[f"stokes_fno_s{s}"]["rel_l2"] == done[("stokes", "fno", s)]["rel_l2"]
        assert rows[f"heat_boon_hidden_s{s}"]["state"] == "not defined"
    # Seed 2 is new: one run held by a live process (this one), one interrupted (a checkpoint, its process gone),
    # the rest pending; the time left is the finished runs' seconds per epoch times the epochs to go.
    claim = repro.claim_run(tmp_path / "runs", "stokes_fno_s2")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "runs" / "heat_fno_s2.claim").write_text(json.dumps(dict(pid=int(dead.stdout), host=platform.node())))
    torch.save(dict(epoch=1, key=repro.run_key(cfg, "heat", "fno", "paper")), tmp_path / "runs" / "heat_fno_s2.ckpt.pt")
    # a checkpoint of other settings is not resumed by train(), so it is no progress
    torch.save(dict(epoch=1, key="other"), tmp_path / "runs" / "stokes_boon_hidden_s2.ckpt.pt")
    rows = {r["name"]: r for r in repro.campaign_status(tmp_path, problems, models, cfg, "paper")}
    assert rows["stokes_fno_s2"]["state"] == "training" and rows["heat_fno_s2"]["state"] == "interrupted"
    assert rows["stokes_boon_hidden_s2"]["state"] == "pending" and rows["heat_boon_hidden_s2"]["state"] == "not defined"
    rate = np.median([done[("heat", "fno", s)]["train_seconds"] / TINY["max_epochs"] for s in (0, 1)])
    assert rows["heat_fno_s2"]["seconds_left"] == pytest.approx(rate * (TINY["max_epochs"] - 1))
    assert rows["heat_fno_s2"]["epoch"] == 1 and rows["stokes_fno_s2"]["epoch"] == 0
    claim.unlink()
    with pytest.raises(ValueError, match="models: expected names from"):
        repro.campaign_status(tmp_path, problems, ["fno", "boon_hiden"], cfg, "paper")
    # The command line prints the table and the totals, and trains and writes nothing.
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    monkeypatch.setitem(repro.CONFIGS, "quick", dict(repro.CONFIGS["quick"], **TINY))  # the settings of tiny_run
    repro.main(["--status", "--quick", "--out", str(tmp_path), "--problems", "heat,stokes", "--models",
                "fno,boon_hidden", "--seeds", "0,1,2"])
    text = capsys.readouterr().out
    assert "heat_fno_s2" in text and "interrupted" in text
    assert text.strip().splitlines()[-1].startswith("6 finished, 0 training, 1 interrupted, 2 pending, 3 not defined")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    # A checkpoint under the fingerprint from before ``min_epochs`` is resumed by train(), so it is progress.
    current, legacy = repro.resumable_keys(cfg, "stokes", "boon_hidden", "paper")
    assert current == repro.run_key(cfg, "stokes", "boon_hidden", "paper") and legacy != current
    torch.save(dict(epoch=2, key=legacy), tmp_path / "runs" / "stokes_boon_hidden_s2.ckpt.pt")
    row = {r["name"]: r for r in repro.campaign_status(tmp_path, problems, models, cfg, "paper")}["stokes_boon_hidden_s2"]
    assert row["state"] == "interrupted" and row["epoch"] == 2


def test_verify_retrains_the_first_epochs_bit_for_bit_and_catches_a_changed_run(repro, tiny_run, tmp_path, capsys,
                                                                                 monkeypatch):
    import shutil

    src, _ = tiny_run
    shutil.copytree(src / "runs", tmp_path / "runs")
    shutil.copytree(src / "data", tmp_path / "data")
    cfg = repro.make_config(quick=True, config=TINY)
    rows = repro.verify_runs(tmp_path, ["stokes", "heat"], ["fno", "boon_hidden"], cfg, "paper", epochs=1)
    # heat has no values-in-every-layer run (Neumann): nothing to retrain there
    assert [r["name"] for r in rows] == ["stokes_fno_s0", "heat_fno_s0", "stokes_boon_hidden_s0", "stokes_fno_s1",
                                         "heat_fno_s1", "stokes_boon_hidden_s1"]
    assert all(r["identical"] and r["max_rel_diff"] == 0.0 and r["epochs"] == 1 for r in rows)
    # each run is retrained with the thread count it records
    assert all(r["threads"] == json.loads((tmp_path / "runs" / f"{r['name']}.json").read_text())["threads"] >= 1
               for r in rows)
    # A record that the code does not give (here: its second epoch's test error) is caught, from the command too.
    path = tmp_path / "runs" / "heat_fno_s1.json"
    record = json.loads(path.read_text())
    record["test_rel_l2"][1] *= 1 + 1e-6
    path.write_text(json.dumps(record))
    monkeypatch.setitem(repro.CONFIGS, "quick", dict(repro.CONFIGS["quick"], **TINY))  # the settings of tiny_run
    with pytest.raises(SystemExit) as stop:
        repro.main(["--verify", "5", "--quick", "--threads", "1", "--out", str(tmp_path), "--problems", "heat",
                    "--models", "fno"])
    assert stop.value.code == 1
    text = capsys.readouterr().out
    assert "heat_fno_s0: 2 epochs, identical" in text and "heat_fno_s1: 2 epochs, differs" in text
    assert f"1 of 2 runs identical; wrote {tmp_path / 'verify.json'}" in text
    assert re.search(r"heat_fno_s1 +2 +False +1\.00e-06", text)  # the table row of the changed run
    saved = json.loads((tmp_path / "verify.json").read_text())
    assert [r["identical"] for r in saved["rows"]] == [True, False]
    assert saved["rows"][1]["max_rel_diff"] == pytest.approx(1e-6, rel=1e-3)
    # A check of other runs updates their rows and keeps the record of the runs it did not retrain. The commit
    # recorded is the one the check started from, not one made (or files edited) while it ran.
    commits = iter(["at start", "later"])
    monkeypatch.setattr(repro, "_git_commit", lambda *args, **kwargs: next(commits))
    repro.main(["--verify", "1", "--quick", "--threads", "1", "--out", str(tmp_path), "--problems", "stokes",
                "--models", "fno"])
    saved = json.loads((tmp_path / "verify.json").read_text())
    assert [r["commit"] for r in saved["rows"][2:]] == ["at start", "at start"]
    assert [(r["name"], r["identical"], r["epochs"]) for r in saved["rows"]] == [
        ("heat_fno_s0", True, 2), ("heat_fno_s1", False, 2), ("stokes_fno_s0", True, 1), ("stokes_fno_s1", True, 1)]
    assert all("--problems heat" in r["command"] for r in saved["rows"][:2])
    assert all("--problems stokes" in r["command"] for r in saved["rows"][2:])
    assert "--problems stokes" in saved["last_check"]["command"]
    with pytest.raises(TypeError, match="keys: expected a sequence of fingerprints"):
        repro.train(None, None, "heat", cfg, 0, "paper", keys=rows[0]["name"])  # one str, not a sequence of them
    with pytest.raises(ValueError, match=r"epochs \(--verify\): expected a positive"):
        repro.verify_runs(tmp_path, ["heat"], ["fno"], cfg, "paper", epochs=0)
    # Nothing to compare is an error, not a pass: another schedule, or an empty folder.
    with pytest.raises(ValueError, match="out: no finished run .* trained with other settings: heat_fno_s0"):
        repro.verify_runs(tmp_path, ["heat"], ["fno"], cfg, "converge", epochs=1)
    with pytest.raises(ValueError, match="out: no finished run"):
        repro.verify_runs(tmp_path / "nowhere", ["heat"], ["fno"], cfg, "paper", epochs=1)


def test_report_writes_the_generated_block_of_a_docs_page(repro, tiny_run, tmp_path):
    import shutil

    src, _ = tiny_run
    out = tmp_path / "results" / "boon"
    shutil.copytree(src / "runs", out / "runs")
    shutil.copytree(src / "data", out / "data")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text(f"# Lib\n\n{repro.SUMMARY_BEGIN}\nold claim\n{repro.SUMMARY_END}\n")
    for text, match in [("# Page\n\nno block here\n", "docs: .*page.md holds no generated block"),
                        (f"{repro.DOCS_END}\n{repro.DOCS_BEGIN}\n", "docs: .*page.md must hold the line"),
                        (f"{repro.SUMMARY_BEGIN}\n{repro.SUMMARY_BEGIN}\n{repro.SUMMARY_END}\n", "must hold the line"),
                        (f"{repro.DOCS_BEGIN}\n{repro.SUMMARY_BEGIN}\n{repro.SUMMARY_END}\n{repro.DOCS_END}\n",
                         "docs: the generated blocks of .*page.md overlap")]:
        page.write_text(text)
        with pytest.raises(ValueError, match=match):
            repro.run(quick=True, out=out, config=TINY, verbose=False, report_only=True, docs=[readme, page])
    assert not (out / "results.md").exists() and "old claim" in readme.read_text()  # refused before any writing
    page.write_text(f"# Page\n\nbefore\n\n{repro.DOCS_BEGIN}\nstale text\n{repro.DOCS_END}\n\nafter\n")
    for _ in range(2):  # a second report replaces the block, it does not add one
        repro.run(quick=True, out=out, config=TINY, verbose=False, report_only=True, docs=[page, readme],
                  command="CMD")
    # The README's block gets the summary: until 3 seeds, seeds counted and no ratio quoted.
    summary = readme.read_text().split(repro.SUMMARY_BEGIN)[1].split(repro.SUMMARY_END)[0]
    assert "old claim" not in summary and "Generated by `CMD`" in summary
    assert "| BOON (T2 + T1 in every layer) | not defined | pending (2 of 3 seeds) |" in summary
    assert "**No default chosen yet**" in summary and "[results/boon](results/boon/results.md)" in summary
    # One page may hold both blocks, each rewritten with its own content.
    both = tmp_path / "docs" / "both.md"
    both.write_text(f"{repro.SUMMARY_BEGIN}\nx\n{repro.SUMMARY_END}\nmiddle\n{repro.DOCS_BEGIN}\ny\n{repro.DOCS_END}\n")
    repro.run(quick=True, out=out, config=TINY, verbose=False, report_only=True, docs=[both], command="CMD")
    text = both.read_text()
    first = text.split(repro.SUMMARY_BEGIN)[1].split(repro.SUMMARY_END)[0]
    second = text.split(repro.DOCS_BEGIN)[1].split(repro.DOCS_END)[0]
    assert "Generated by `CMD`" in first and "Command: `CMD`" not in first
    assert "Command: `CMD`" in second and "\nmiddle\n" in text
    assert "[../results/boon](../results/boon/results.md)" in first  # links relative to the page
    text = page.read_text()
    assert text.startswith("# Page\n\nbefore\n\n") and text.endswith(f"{repro.DOCS_END}\n\nafter\n")
    assert "stale text" not in text and text.count(repro.DOCS_BEGIN) == 1
    block = text.split(repro.DOCS_BEGIN)[1].split(repro.DOCS_END)[0]
    assert "Command: `CMD`" in block and "| heat | FNO | 2 |" in block and "#### Default chosen by the rule" in block
    # the page's links reach the report's plots
    links = [line[line.index("(") + 1:-1] for line in block.splitlines() if line.startswith("![")]
    assert links and all((page.parent / link).resolve().is_file() for link in links)
    results_md = (out / "results.md").read_text()
    assert results_md.startswith("# BOON reproduction") and "## Default chosen by the rule" in results_md
