"""The hard-regime campaign (``reproduce_boon --campaign hard``): a smoke run of a few cells, the exact region
split of the error, the wall-input FNO's inputs against BOON's, and the rule over the campaign's cells."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.boon_campaign import hard, hard_campaign
from experiments.boon_campaign.metrics import _face_slope
from experiments.boon_campaign.regions import REGIONS, region_errors, region_masks, region_summary
from experiments.boon_campaign.rule import choose_default

CELLS = ["heat/ordered", "stokes_thin/iid", "cavity_velocity/iid"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("boon_hard")
    torch.set_num_threads(1)
    res = hard_campaign.run(out, quick=True, cells=CELLS, verbose=False, plots=True, command="test")
    return out, res


def test_quick_cells_train_every_model_and_boon_holds_the_walls(smoke):
    out, res = smoke
    runs = {(r["cell"], r["model"]): r for r in res["runs"]}
    for cell in CELLS:
        for m in hard.MODELS:
            ok, why = hard.defined(m, cell)
            r = runs[(cell, m)]
            if not ok:
                assert r["not_defined"] == why
                continue
            assert math.isfinite(r["rel_l2"]) and r["rel_l2"] > 0, r
            if m in ("fno", "fno_walls"):
                continue
            n = hard.cell_settings(hard.make_config(True), cell)["kwargs"]["n_points"]
            # float32 round-off of the stored face values, amplified by 4 / (2h) on Neumann rows
            assert r["boundary_error"] < 64 * np.finfo(np.float32).eps * (n - 1), r
    # T2 on the cavity's two spatial axes (an even node count along the first) trains and holds every wall
    assert hard.PENDING == {} and runs[("cavity_velocity/iid", "boon")]["boundary_error"] >= 0
    assert "not_defined" in runs[("heat/ordered", "boon_hidden")]
    # Every split part adds up to the total; space-time cells carry one error per frame.
    for r in res["runs"]:
        if "not_defined" in r:
            continue
        parts = sum(r[f"rms_rel_l2_{k}"] ** 2 for k in REGIONS)
        assert parts == pytest.approx(r["rms_rel_l2"] ** 2, rel=1e-12)
        if r["cell"] != "heat/ordered":
            n_times = hard.cell_settings(hard.make_config(True), r["cell"])["kwargs"]["n_times"]
            assert len(r["rel_l2_over_time"]) == n_times
    # The report's "with exact Dirichlet walls" column: enforcement at the output changes the wall nodes only, so
    # the wrapped FNO's error is the FNO's band and interior parts, exactly.
    for cell in ("stokes_thin/iid", "cavity_velocity/iid"):
        fno, wrapped = runs[(cell, "fno")], runs[(cell, "fno_enforced")]
        assert wrapped["rms_rel_l2_wall"] == 0
        assert wrapped["rms_rel_l2"] == pytest.approx(math.hypot(fno["rms_rel_l2_band"], fno["rms_rel_l2_interior"]),
                                                      rel=1e-5)
    assert "with exact Dirichlet walls" in (out / "results.md").read_text()
    assert (out / "over_time_stokes_thin_iid.png").exists() and (out / "results.md").exists()
    assert (out / "gains.png").exists() and "](gains.png)" in (out / "results.md").read_text()
    md = (out / "results.md").read_text()
    assert "n/a: values in every layer need one output channel" in md and "end of its full learning-rate schedule" in md


def test_the_walls_share_of_the_nodes_stands_beside_their_share_of_the_error(smoke):
    out, res = smoke
    # quick cavity: 8 x 8 nodes, 28 of them on the walls (every frame alike); quick thin-layer Stokes: 2 of 33
    expected = {"cavity_velocity/iid": 28 / 64, "stokes_thin/iid": 2 / 33}
    summary = hard_campaign.summarize(res["runs"], CELLS, list(hard.MODELS))
    md = (out / "results.md").read_text()
    for cell, wall in expected.items():
        fractions = summary[cell]["fno"]["node_fraction"]
        assert fractions["wall"] == pytest.approx(wall) and sum(fractions.values()) == pytest.approx(1.0)
        share = summary[cell]["fno"]["share_wall"]["median"]
        assert f"| {cell} | 1 | {share:.0%} ({wall:.0%} of nodes) |" in md


def test_resume_keeps_finished_runs_and_status_reads_them(smoke):
    out, _ = smoke
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    res = hard_campaign.run(out, quick=True, cells=CELLS[:1], seeds=[0], models=["fno"], verbose=False,
                            plots=False, resume=True, command="test")
    after = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    assert {k: after[k] for k in before} == before
    # A call that selects one cell, model and seed still reports every finished run in the folder (lanes share
    # one folder), and the rule still requires every cell of the campaign.
    assert {(r["cell"], r["model"]) for r in res["runs"]} >= {(c, m) for c in CELLS for m in hard.MODELS}
    untrained = [c for c in hard.make_config(True)["cells"] if c not in CELLS]
    assert untrained and set(res["decision"]["missing"]) == set(untrained)
    md = (out / "results.md").read_text()
    assert all(c in md for c in CELLS) and "--campaign hard --quick --report-only" in md
    rows = hard_campaign.status(out, hard.make_config(True, cells=CELLS + ["wave/iid"]))
    states = {r["name"]: r["state"] for r in rows}
    assert states["stokes_thin_iid_fno_s0"] == "finished" and states["wave_iid_fno_s0"] == "pending"
    assert states["cavity_velocity_iid_boon_s0"] == "finished" and states["cavity_velocity_iid_boon_hidden_s0"] == "n/a"
    # the report hands status the runs it read (a superset of the plan's): same rows as status reading them itself
    cfg = hard.make_config(True, cells=CELLS + ["wave/iid"])
    given = hard_campaign.status(out, cfg, runs=hard_campaign.finished_runs(out, hard_campaign.report_config(out, True)))
    assert given == rows
    # a pending run is costed by the plan: its FNO seconds per epoch times the model's factor, over every epoch
    plan_rows = hard_campaign.plan(cfg)
    wave = next(r for r in rows if r["name"] == "wave_iid_fno_s0")
    expected = hard_campaign.planned_s_per_epoch(plan_rows, "wave/iid", "fno") * next(
        r["epochs"] for r in plan_rows if r["cell"] == "wave/iid")
    assert wave["left"] == pytest.approx(expected) and expected > 0
    assert hard_campaign.planned_s_per_epoch(plan_rows, "nowhere/iid", "fno") is None
    assert hard_campaign.planned_s_per_epoch(plan_rows, "wave/iid", "fno_enforced") == 0.0
    # --verify: the first epoch of every finished run retrains to the recorded curves bit for bit
    rows = hard_campaign.verify(out, hard.make_config(True, cells=CELLS[1:2]), hard.MODELS, 1)
    assert len(rows) == len(hard.TRAINED_MODELS) and all(r["identical"] for r in rows), rows


def test_ordered_split_trains_low_and_tests_high(tmp_path):
    cfg = hard.make_config(True)
    settings_ = hard.cell_settings(cfg, "heat/ordered")
    problem = hard.generate(settings_, tmp_path)
    tr, va, te = hard.split_indices(problem, settings_)
    w = np.asarray(problem.params["ic_frequency"])
    assert len(set(tr) | set(va) | set(te)) == len(tr) + len(va) + len(te) == sum(settings_["sizes"])
    assert w[tr].max() <= w[va].min() and w[va].max() <= w[te].min()
    iid = hard.split_indices(problem, hard.cell_settings(cfg, "heat/iid"))
    assert iid[0] == list(range(len(tr)))


@pytest.mark.parametrize("cell", ["wave/ordered", "heat/random", "nope/iid"])
def test_bad_cells_are_refused(cell):
    with pytest.raises(ValueError, match="cells must"):
        hard.make_config(True, cells=[cell])


@settings(max_examples=40, deadline=None)
@given(layout=st.sampled_from([(1, ()), (1, (5,)), (2, (4,))]), n=st.integers(5, 40), frac=st.floats(0.0, 0.3),
       channels=st.integers(1, 2), seed=st.integers(0, 2**31 - 1))
def test_region_split_is_a_partition_whose_squares_add_up(layout, n, frac, channels, seed):
    n_axes, rest = layout
    shape = (3, channels) + (n,) * n_axes + rest
    walls = [-(len(rest) + 1 + k) for k in range(n_axes)]
    masks = region_masks(shape, walls, frac)
    count = sum(m.expand(shape).long() for m in masks.values())
    assert bool((count == 1).all())  # every node in exactly one region
    g = torch.Generator().manual_seed(seed)
    y, pred = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    e = region_errors(pred, y, masks)
    total2 = sum(e[r] ** 2 for r in REGIONS)
    torch.testing.assert_close(total2, e["total"] ** 2, rtol=1e-12, atol=0)
    s = region_summary(pred, y, walls, frac)
    assert sum(s[f"rms_rel_l2_{r}"] ** 2 for r in REGIONS) == pytest.approx(s["rms_rel_l2"] ** 2, rel=1e-12)
    assert sum(s[f"share_{r}"] for r in REGIONS) == pytest.approx(1.0, rel=1e-12)


_PROBLEMS = {}


def _tiny_problem(name, tmp_path):
    if name not in _PROBLEMS:
        cfg = hard.make_config(True)
        _PROBLEMS[name] = hard.generate(hard.cell_settings(cfg, f"{name}/iid"), tmp_path)
    return _PROBLEMS[name]


def _faces_of(z, problem):
    """Call-time values of ``problem``'s shapes taken from the field ``z``: Dirichlet values are its faces,
    consistent at the corners as the campaign's (the target's faces) are; Neumann slopes are others of its
    numbers."""
    values = {}
    n_axes = z.ndim - 2
    for cond in problem.boundary:
        dim = cond.get("dim", -1)
        for side in cond.get("faces", []):
            key = side if len({c.get("dim", -1) for c in problem.boundary}) == 1 else f"{side}{dim % n_axes}"
            if key not in problem.boundary_values:
                continue
            shape = problem.boundary_values[key].shape
            if cond["type"] == "neumann":  # a slope: any number
                values[key] = z.flatten()[: math.prod(shape)].reshape(shape) * 0.5 + 1.0
            else:
                face = z.select(dim, 0 if side == "left" else z.shape[dim] - 1)
                values[key] = face.reshape(shape)
    assert values.keys() == problem.boundary_values.keys()
    return values


@pytest.mark.parametrize("name", ["burgers_walls", "heat", "stokes_thin", "wave", "cavity_velocity"])
@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 1000), scale=st.floats(0.1, 10.0))
def test_wall_input_channels_hold_exactly_what_boon_receives(name, seed, scale, tmp_path_factory):
    problem = _tiny_problem(name, tmp_path_factory.mktemp("d"))
    g = torch.Generator().manual_seed(seed)
    # Random call-time values (the faces of a random field) and random weights: BOON output-only writes the values
    # it receives into its face nodes (Dirichlet) or face slopes (Neumann); the wall-input channels must hold
    # the same numbers all along each wall's normal.
    x = problem.x
    values = _faces_of(scale * torch.randn(problem.y.shape, generator=g), problem)
    boon = hard.build_model("boon_output", problem, dict(n_modes=(4,) * (x.ndim - 2), hidden_channels=4,
                                                          n_layers=1), seed)
    for p in boon.parameters():
        p.data = torch.randn(p.shape, generator=g, dtype=p.dtype)
    with torch.no_grad():
        out = boon(x, boundary_values=values).double()
    chans = hard.wall_channels(x, problem.boundary, values)
    c = x.shape[1]
    k = 0
    for cond in problem.boundary:
        dim = cond.get("dim", -1)
        n = x.shape[dim]
        sides = [s for s in ("left", "right") if s in cond] + list(cond.get("faces", []))
        for side in dict.fromkeys(sides):
            block = chans[:, k * c:(k + 1) * c].double()
            k += 1
            # the same value at every node along the wall's normal
            assert bool((block == block.select(dim, 0).unsqueeze(dim)).all())
            given_ = block.select(dim, 0)
            if cond["type"] == "dirichlet":
                got = out.select(dim, 0 if side == "left" else n - 1)
            else:
                a, b = cond.get("domain", problem.domain)
                got = _face_slope(out, side, (b - a) / (n - 1), dim, cond.get("order", 2))
            # BOON computes in float32: its face holds the value to float32 round-off of the output's size
            # (slopes: of the three nodes' values, over h)
            size = 1 + max(float(given_.abs().max()), float(out.abs().max()))
            tol = 8 * np.finfo(np.float32).eps * size * (n if cond["type"] == "neumann" else 1)
            torch.testing.assert_close(got, given_, rtol=0, atol=float(tol))
    assert k * c == chans.shape[1]


@pytest.mark.parametrize("name", ["burgers_walls", "stokes_thin", "cavity_vorticity"])
def test_wall_input_fno_starts_as_the_fno(name, tmp_path):
    problem = _tiny_problem(name, tmp_path)
    arch = hard.cell_settings(hard.make_config(True), f"{name}/iid")["arch"]
    fno = hard.build_model("fno", problem, arch, 3)
    walls = hard.build_model("fno_walls", problem, arch, 3)
    bv = {k: v[:2] for k, v in problem.boundary_values.items()}
    with torch.no_grad():
        torch.testing.assert_close(walls(problem.x[:2], boundary_values=bv), fno(problem.x[:2]), rtol=0, atol=0)
    # ...and does read the walls once its extra weights move
    lift = walls.fno.lifting.fcs[0].weight
    assert lift.shape[1] == fno.lifting.fcs[0].weight.shape[1] + walls.n_extra


def _entry(err, fno_err):
    return dict(rel_l2=dict(median=err, min=err, max=err),
                factor=dict(median=fno_err / err, min=fno_err / err, max=fno_err / err, n=3))


def test_rule_generalised_to_the_hard_cells():
    cells = ["a/iid", "b/ordered"]
    fno = dict(rel_l2=dict(median=1.0, min=1.0, max=1.0))
    summary = {c: {"fno": fno, "boon_output": _entry(0.5, 1.0), "boon": _entry(1.0, 1.0),
                   "fno_walls": _entry(0.9, 1.0), "fno_enforced": _entry(0.8, 1.0),
                   "boon_hidden": {"not_defined": "n/a", "n_seeds": 0}} for c in cells}
    costs = {"output only": 1.0, "T2": 1.7}
    d = choose_default(summary, costs, required=cells, variants=hard_campaign.RULE_VARIANTS,
                       candidates=hard_campaign.RULE_CANDIDATES)
    assert d["default"] == "boon_output" and d["problems"] == cells
    assert d["verdicts"]["fno_walls"] == {c: "better" for c in cells} and d["cost"]["fno_walls"] is None
    # a cell waiting for the multi-axis T2 keeps the rule pending
    summary["b/ordered"]["boon"] = {"pending": "pending the multi-axis T2", "n_seeds": 0}
    d = choose_default(summary, costs, required=cells, variants=hard_campaign.RULE_VARIANTS,
                       candidates=hard_campaign.RULE_CANDIDATES)
    assert d["default"] is None and d["reason"].startswith("pending")
    # a required cell with no FNO run blocks it too
    d = choose_default({"a/iid": summary["a/iid"]}, costs, required=cells, variants=hard_campaign.RULE_VARIANTS,
                       candidates=hard_campaign.RULE_CANDIDATES)
    assert d["missing"] == ["b/ordered"] and d["default"] is None
    with pytest.raises(ValueError, match="candidates must"):
        choose_default(summary, costs, required=cells, variants=hard_campaign.RULE_VARIANTS,
                       candidates=("fno_walls",))


def test_plan_fits_the_budget_and_reads_the_measured_costs():
    rows = hard_campaign.plan(hard.make_config(False))
    assert {r["cell"] for r in rows} == set(hard.CONFIGS["full"]["cells"])
    measured = json.loads(open("results/datasets/costs.json").read())["problems"]
    heat = next(r for r in rows if r["cell"] == "heat/iid")
    assert heat["fno_s_per_epoch"] == pytest.approx(measured["heat_reference"]["fno_epoch_s"])
    assert sum(r["hours"] for r in rows) <= hard.BUDGET_HOURS
    # a grid other than the measured one is scaled by its spatial nodes (the cavity: 18 x 18 against 17 x 17)
    cavity = next(r for r in rows if r["cell"] == "cavity_vorticity/iid")
    n = hard.cell_settings(hard.make_config(False), "cavity_vorticity/iid")["kwargs"]["n_points"]
    assert cavity["fno_s_per_epoch"] == pytest.approx(
        measured["cavity"]["fno_epoch_s"] * (n / measured["cavity"]["shape"][1]) ** 2)


@pytest.mark.parametrize("quick", [False, True])
def test_every_t2_cell_has_the_even_grid_t2_needs(quick):
    """T2 refuses an odd node count along a non-last spatial axis: no campaign cell may ask it for one."""
    cfg = hard.make_config(quick)
    for cell in cfg["cells"]:
        st = hard.cell_settings(cfg, cell)
        if hard.defined("boon", cell)[0] and hard.PROBLEMS[st["problem"]]["generator"] == "lid_driven_cavity":
            assert st["kwargs"]["n_points"] % 2 == 0, cell


def test_command_line_plan_status_and_bad_cells(tmp_path, capsys):
    from experiments.reproduce_boon import main

    main(["--campaign", "hard", "--plan"])
    assert "against the 40 h budget" in capsys.readouterr().out
    main(["--campaign", "hard", "--quick", "--status", "--out", str(tmp_path), "--cells", "wave/iid"])
    assert "wave_iid_fno_s0" in capsys.readouterr().out
    with pytest.raises(ValueError, match="cells must"):
        main(["--campaign", "hard", "--plan", "--cells", "wave/ordered"])
    with pytest.raises(ValueError, match="models must"):
        main(["--campaign", "hard", "--plan", "--models", "fno,unet"])


@pytest.mark.parametrize("argv, message", [
    (["--campaign", "hard", "--plan", "--schedule", "converge"], "--schedule belongs to --campaign boon"),
    (["--schedule", "paper", "--campaign", "hard", "--plan"], "--schedule belongs to --campaign boon"),
    (["--campaign", "hard", "--plan", "--problems", "heat"], "--problems belongs to --campaign boon"),
    (["--campaign", "hard", "--plan", "--set", "lr=0.1"], "--set belongs to --campaign boon"),
    (["--campaign", "hard", "--plan", "--max-epochs", "3"], "--max-epochs belongs to --campaign boon"),
    (["--status", "--cells", "heat/iid"], "--cells belongs to --campaign hard"),
    (["--status", "--plan"], "--plan belongs to --campaign hard"),
    (["--campaign", "hard", "--status", "--plan"], "--plan and --status cannot be combined"),
    (["--campaign", "hard", "--plan", "--docs", "x.md"], "--docs does nothing with --plan"),
    (["--campaign", "hard", "--verify", "1", "--costs", "x.json"], "--costs does nothing with --verify"),
    (["--status", "--no-plots"], "--no-plots does nothing with --status"),
    (["--campaign", "hard", "--report-only", "--verify", "1"], "--verify and --report-only cannot be combined"),
    (["--campaign", "hard", "--status", "--device", "cpu"], "--device does nothing with --status"),
    (["--campaign", "hard", "--plan", "--device", "cuda"], "--device does nothing with --plan"),
    (["--report-only", "--device", "cpu"], "--device does nothing with --report-only"),
    (["--campaign", "hard", "--quick", "--device", "gpu"], "--device must be a torch device"),
    (["--quick", "--device", "mps"], "--device must be 'cpu' or a CUDA device"),
])
def test_an_option_the_call_does_not_read_is_refused_by_name(argv, message, capsys):
    from experiments.reproduce_boon import main

    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_a_report_keeps_runs_of_cells_and_seeds_outside_the_modes_and_requires_the_modes_cells(tmp_path):
    out = tmp_path / "hard"
    torch.set_num_threads(1)
    hard_campaign.run(out, quick=True, cells=["stokes_ref/ordered"], models=["fno"], seeds=[3], verbose=False,
                      plots=False, command="test")
    res = hard_campaign.run(out, quick=True, verbose=False, plots=False, report_only=True, command="test",
                            costs=None)
    assert {(r["cell"], r["model"], r["seed"]) for r in res["runs"]} >= {("stokes_ref/ordered", "fno", 3)}
    assert "stokes_ref/ordered" in (out / "results.md").read_text()
    assert set(res["decision"]["missing"]) == set(hard.make_config(True)["cells"])  # no FNO run in the modes' cells
    assert "--campaign hard --quick --report-only" in res["regenerate"] and "--costs" not in res["regenerate"]


def test_docs_block_is_written_from_every_finished_run_and_a_bad_page_fails_first(smoke, tmp_path):
    out, _ = smoke
    from experiments.docs_blocks import markers

    begin, end = markers("reproduce_boon --campaign hard")
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(f"# Page\n\nbefore\n\n{begin}\nSTALE BLOCK\n{end}\n\nafter\n")
    res = hard_campaign.run(out, quick=True, cells=CELLS, verbose=False, plots=True, resume=True, command="test",
                            report_only=True, docs=[str(page)])
    text = page.read_text()
    assert text.startswith("# Page\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "STALE BLOCK" not in text
    block = text[text.index(begin):text.index(end)]
    assert "#### BOON hard-regime campaign (quick mode)" in block and "What the walls hold" in block
    for cell in CELLS:
        assert f"| {cell} | FNO |" in block
    # figures linked relative to the page
    rel = Path(os.path.relpath(out, page.parent)).as_posix()
    assert f"]({rel}/over_time_stokes_thin_iid.png)" in block
    assert len(res["runs"]) > 0
    bare = tmp_path / "bare.md"
    bare.write_text("# no block\n")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ValueError, match="--docs: .*holds no generated block"):
        hard_campaign.run(out, quick=True, cells=CELLS, verbose=False, command="test", report_only=True,
                          docs=[str(bare)])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_device_that_cannot_train_here_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from experiments import launch
    from experiments.reproduce_boon import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as err:
        main(["--campaign", "hard", "--quick", "--device", "cuda", "--out", str(tmp_path / "out")])
    assert err.value.code == 2 and "--device cuda: torch finds no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # no data generated, no run claimed
    # With CUDA, an index past the machine's devices is refused too; a valid one is returned as a device.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert launch.parse_device("cuda:1") == torch.device("cuda", 1)
    assert launch.parse_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device cuda:2: this machine has 2 CUDA device"):
        launch.parse_device("cuda:2")


def test_the_report_says_which_runs_are_still_missing():
    rows = [dict(name=f"c_{m}_s{s}", cell="c", model=m, seed=s, state=st, left=left)
            for m, s, st, left in [("fno", 0, "finished", 0.0), ("fno", 1, "interrupted", 1800.0),
                                   ("boon_output", 0, "finished", 0.0), ("boon_output", 1, "finished", 0.0),
                                   ("boon_hidden", 0, "n/a", 0.0), ("boon_hidden", 1, "n/a", 0.0)]]
    text = hard_campaign.progress_markdown(rows, labels={"fno": "FNO"})
    assert text.startswith("Progress: 3 of the 4 planned runs finished; about 0.5 single-thread hours")
    assert "- c: FNO 1/2" in text and "boon_output" not in text and "boon_hidden" not in text
    done = [dict(r, state="finished", left=0.0) if r["state"] == "interrupted" else r for r in rows]
    assert "where short" not in hard_campaign.progress_markdown(done)  # nothing short: no list


def test_the_plan_is_quoted_beside_what_it_became():
    rows = [dict(cell="a/iid", fno_s_per_epoch=2.0, epochs=900), dict(cell="b/iid", fno_s_per_epoch=1.0, epochs=360)]
    runs = [dict(cell="a/iid", model="fno"), dict(cell="a/iid", model="boon"), dict(cell="a/iid", model="fno_enforced"),
            dict(cell="b/iid", model="boon_output"), dict(cell="c/iid", model="fno"),
            dict(cell="b/iid", model="boon_hidden", not_defined="n/a: values in every layer need Dirichlet faces")]
    # a: 0.5 h per FNO run, T2 at its cost factor; the wrapped FNO, a cell outside the plan and a model not defined
    # on its cell (nothing trained, no hours in the plan) count nothing
    expected = 0.5 * (1 + hard.COST_FACTOR["boon"]) + 0.1
    assert hard_campaign.planned_hours(runs, rows) == pytest.approx(expected)
