"""The paper regime's recorded runs, ``--report-only``, ``--docs PAGE`` and ``--verify N``
(experiments/reproduce_probconserv.py), on a tiny run of two seeds."""

import json
import shutil

import numpy as np
import pytest

STEPS = 6
TINY = ["--regime", "paper", "--quick", "--problems", "stefan", "diffusion", "--windows", "paper", "--seeds", "0",
        "1", "--steps", str(STEPS), "--n-train", "8", "--n-test", "2", "--n-samples", "10", "--n-latent", "3",
        "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(repro, tmp_path_factory):
    out = tmp_path_factory.mktemp("pc_docs")
    res = repro.main(TINY + ["--out", str(out)])
    return res, out


def _page(repro, kinds, stale="stale table"):
    """A page with text around, between and inside the generated blocks of ``kinds``."""
    parts = ["# Page\n\nbefore\n"]
    for kind in kinds:
        begin, end = repro.DOCS_BLOCKS[kind]
        parts.append(f"{begin}\n{stale} {kind}\n{end}\n\ntext after {kind}\n")
    return "\n".join(parts)


def _outside(repro, text):
    """The text of a page outside its generated blocks (the markers kept)."""
    for begin, end in repro.DOCS_BLOCKS.values():
        if begin in text:
            head, rest = text.split(begin)
            text = head + begin + end + rest.split(end)[1]
    return text


def test_records_losses_commit_and_machine(tiny, repro):
    res, out = tiny
    data = json.loads((out / "results_paper.json").read_text())
    meta = data["meta"]
    assert set(meta["runs"]) == {f"{p}/paper/seed{s}" for p in ("stefan", "diffusion") for s in (0, 1)}
    for key, run in meta["runs"].items():
        assert run["steps"] == STEPS and len(run["first_losses"]) == min(STEPS, repro.VERIFY_STEPS)
        assert all(isinstance(v, float) and np.isfinite(v) for v in run["first_losses"])
        assert run["t_final"] == repro.WINDOWS["paper"][run["problem"]]
    # the two seeds train different models
    assert meta["runs"]["stefan/paper/seed0"]["first_losses"] != meta["runs"]["stefan/paper/seed1"]["first_losses"]
    assert data["commit"] == meta["commit"] and meta["commit"]
    info = meta["machine_info"]
    assert info["cpu_capability"] and info["torch"] == meta["torch"] and info["torch_threads"] == 1
    md = (out / "results_paper.md").read_text()
    assert f"Commit: {meta['commit']}" in md and meta["machine"] in md and meta["command"] in md


def test_report_only_rebuilds_the_same_report(tiny, repro, monkeypatch):
    res, out = tiny
    md, js = (out / "results_paper.md").read_text(), (out / "results_paper.json").read_text()
    (out / "results_paper.md").write_text("overwritten")
    monkeypatch.setattr(repro, "train_paper_anp", _no_training)
    again = repro.main(["--regime", "paper", "--report-only", "--no-progress", "--out", str(out)])
    assert (out / "results_paper.md").read_text() == md
    assert (out / "results_paper.json").read_text() == js
    assert again["rows"] == json.loads(json.dumps(res["rows"]))


def test_report_only_needs_a_run(repro, tmp_path):
    with pytest.raises(ValueError, match="--report-only: needs the results of a paper-regime run"):
        repro.main(["--regime", "paper", "--report-only", "--no-progress", "--out", str(tmp_path / "empty")])


def _no_training(*args, **kwargs):
    raise AssertionError("training started")


def test_docs_replaces_only_the_blocks(tiny, repro, tmp_path):
    res, out = tiny
    page = tmp_path / "page.md"
    page.write_text(_page(repro, repro.DOCS_KINDS))
    before = page.read_text()
    repro.main(["--regime", "paper", "--report-only", "--no-progress", "--out", str(out), "--docs", str(page)])
    text = page.read_text()
    assert _outside(repro, text) == _outside(repro, before)
    assert "stale table" not in text
    meta, rows = res["meta"], res["rows"]
    tables = dict(control=repro.positive_control_table(res["positive_control"]),
                  diagnostics=repro.diagnostics_table(rows), reference=repro.reference_table(rows),
                  shock=repro.shock_table(rows))
    for kind, table in tables.items():
        begin, end = repro.DOCS_BLOCKS[kind]
        block = text.split(begin)[1].split(end)[0]
        assert block.startswith(f"\n\nCommand: `{meta['command']}`")
        assert f"Commit: {meta['commit']}" in block and meta["machine"] in block and "Wall time" in block
        assert block.endswith("\n\n" + table + "\n\n")
    assert "| stefan | p*=0.6 | 0.05 | probconserv |" in tables["shock"]
    # a second pass writes the same page (the blocks are rebuilt from the record alone)
    repro.main(["--regime", "paper", "--report-only", "--no-progress", "--out", str(out), "--docs", str(page)])
    assert page.read_text() == text


def test_docs_writes_the_blocks_a_page_holds(tiny, repro, tmp_path):
    _, out = tiny
    page = tmp_path / "one.md"
    page.write_text(_page(repro, ["shock"]))
    repro.main(["--regime", "paper", "--report-only", "--no-progress", "--out", str(out), "--docs", str(page)])
    text = page.read_text()
    assert "stale table" not in text and "| problem | param | t | method | MSE |" in text
    assert repro.DOCS_BLOCKS["diagnostics"][0] not in text


@pytest.mark.parametrize("body, match", [
    ("# Page\n\nno block\n", "--docs: .*page.md holds no generated block"),
    ("{end}\n{begin}\n", "--docs: .*page.md must hold the line"),
    ("{begin}\n{begin}\n{end}\n", "--docs: .*page.md must hold the line"),
    ("{begin}\n{b2}\n{end}\n{e2}\n", "--docs: the generated blocks of .*page.md overlap"),
])
def test_docs_refuses_a_bad_page_before_training(repro, tmp_path, monkeypatch, body, match):
    begin, end = repro.DOCS_BLOCKS["control"]
    b2, e2 = repro.DOCS_BLOCKS["shock"]
    page = tmp_path / "page.md"
    page.write_text(body.format(begin=begin, end=end, b2=b2, e2=e2))
    monkeypatch.setattr(repro, "train_paper_anp", _no_training)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        repro.main(TINY + ["--out", str(out), "--docs", str(page)])
    assert not out.exists()
    with pytest.raises(ValueError, match="--docs: cannot read"):
        repro.main(TINY + ["--out", str(out), "--docs", str(tmp_path / "missing.md")])


def test_verify_retrains_the_recorded_losses(tiny, repro, tmp_path):
    _, src = tiny
    out = tmp_path / "run"
    shutil.copytree(src, out)
    record = repro.main(["--regime", "paper", "--verify", str(STEPS), "--no-progress", "--out", str(out)])
    saved = json.loads((out / "verify.json").read_text())
    assert saved["ok"] is True and record["ok"] is True
    # the record was written here, in this process: same instruction set and torch, so bit for bit
    assert saved["comparison"] == "bit for bit"
    assert [r["run"] for r in saved["runs"]] == list(json.loads((out / "results_paper.json").read_text())["meta"]
                                                     ["runs"])
    assert all(r["verdict"] == "identical" and r["max_rel_diff"] == 0.0 for r in saved["runs"])
    # fewer steps than recorded: the first ones
    assert repro.main(["--regime", "paper", "--verify", "2", "--no-progress", "--out", str(out)])["ok"]
    with pytest.raises(ValueError, match="--verify must be at most the recorded steps"):
        repro.main(["--regime", "paper", "--verify", str(STEPS + 1), "--no-progress", "--out", str(out)])


@pytest.mark.parametrize("tamper", ["one_ulp", "one_percent", "window"])
def test_verify_reports_a_tampered_record(tiny, repro, tmp_path, tamper):
    _, src = tiny
    out = tmp_path / "run"
    shutil.copytree(src, out)
    path = out / "results_paper.json"
    data = json.loads(path.read_text())
    run = data["meta"]["runs"]["diffusion/paper/seed1"]
    if tamper == "window":
        run["t_final"] = 0.5
    else:
        v = run["first_losses"][3]
        run["first_losses"][3] = float(np.nextafter(v, np.inf)) if tamper == "one_ulp" else v * 1.01
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="--verify: 1 of 4 runs differ"):
        repro.main(["--regime", "paper", "--verify", str(STEPS), "--no-progress", "--out", str(out)])
    saved = json.loads((out / "verify.json").read_text())
    assert saved["ok"] is False
    bad = {r["run"]: r for r in saved["runs"] if not r["ok"]}
    assert list(bad) == ["diffusion/paper/seed1"]
    if tamper == "window":
        assert bad["diffusion/paper/seed1"]["verdict"].startswith("settings differ")
    else:
        assert bad["diffusion/paper/seed1"]["verdict"] == "MISMATCH"
        assert bad["diffusion/paper/seed1"]["first_differing_step"] == 3
        assert bad["diffusion/paper/seed1"]["max_rel_diff"] > 0


def test_verify_needs_recorded_losses(tiny, repro, tmp_path):
    _, src = tiny
    out = tmp_path / "old"
    shutil.copytree(src, out)
    data = json.loads((out / "results_paper.json").read_text())
    del data["meta"]["runs"]
    (out / "results_paper.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="--verify: .* records no per-run losses"):
        repro.main(["--regime", "paper", "--verify", "1", "--no-progress", "--out", str(out)])


@pytest.mark.parametrize("argv", [["--report-only"], ["--docs", "page.md"], ["--verify", "3"],
                                  ["--regime", "paper", "--verify", "0"],
                                  ["--regime", "paper", "--verify", "3", "--docs", "page.md"],
                                  ["--regime", "paper", "--verify", "3", "--report-only"],
                                  ["--regime", "paper", "--estimate", "3", "--report-only"]])
def test_bad_flags_exit(repro, argv):
    with pytest.raises(SystemExit):
        repro.parse_args(argv)


def test_docs_blocks_module(load_experiment, tmp_path):
    """The block reader/writer shared by reproduce_boon and reproduce_probconserv."""
    docs_blocks = load_experiment("docs_blocks")
    blocks = {k: docs_blocks.markers("script", k, "x.json") for k in ("a", "b", "c")}
    assert blocks["a"] == ("<!-- script --docs a: begin (generated from x.json; do not edit by hand) -->",
                           "<!-- script --docs a: end -->")
    page = tmp_path / "p.md"
    # three blocks, out of order on the page: each is written in place, the rest kept byte for byte
    page.write_text(f"top\n{blocks['c'][0]}\nold c\n{blocks['c'][1]}\nmid\n{blocks['a'][0]}\nold a\n"
                    f"{blocks['a'][1]}\nend")
    assert docs_blocks.write_docs_blocks(page, blocks, {"a": "new a", "c": "new c", "b": "unused"}, "--opt") == \
        ["a", "c"]
    assert page.read_text() == (f"top\n{blocks['c'][0]}\n\nnew c\n{blocks['c'][1]}\nmid\n{blocks['a'][0]}\n\nnew a\n"
                                f"{blocks['a'][1]}\nend")
    with pytest.raises(ValueError, match="--opt: .*p.md holds the blocks \\['a'\\], which this run does not"):
        docs_blocks.write_docs_blocks(page, blocks, {"c": "x"}, "--opt")
    # b nested in c (two of three blocks overlapping)
    page.write_text(f"{blocks['a'][0]}\n{blocks['a'][1]}\n{blocks['c'][0]}\n{blocks['b'][0]}\n{blocks['b'][1]}\n"
                    f"{blocks['c'][1]}\n")
    with pytest.raises(ValueError, match="--opt: the generated blocks of .*p.md overlap"):
        docs_blocks.check_docs_blocks(page, blocks, "--opt")


def test_verify_a_parity_run(repro, tmp_path):
    """The reference-parity network (dropout, self-attention, validation) retrains to the same losses too."""
    out = tmp_path / "parity"
    repro.main(["--regime", "paper", "--quick", "--anp", "parity", "--problems", "stefan", "--seeds", "0",
                "--steps", "4", "--n-train", "8", "--n-test", "2", "--n-samples", "10", "--n-latent", "3",
                "--no-progress", "--out", str(out)])
    meta = json.loads((out / "results_paper.json").read_text())["meta"]
    assert meta["config"]["anp"] == "parity" and meta["config"]["dropout"] > 0
    record = repro.main(["--regime", "paper", "--verify", "4", "--no-progress", "--out", str(out)])
    assert record["ok"] and [r["verdict"] for r in record["runs"]] == ["identical"]


def test_docs_tag_writes_its_own_blocks_and_leaves_the_others(tiny, repro, tmp_path):
    """Two runs' tables on one page: ``--docs-tag full`` rewrites the 'KIND full' blocks, not the untagged ones."""
    res, out = tiny
    tagged = repro.docs_blocks("full")
    plain_begin, plain_end = repro.DOCS_BLOCKS["diagnostics"]
    tag_begin, tag_end = tagged["diagnostics"]
    assert tag_begin != plain_begin and "diagnostics full: begin" in tag_begin
    page = tmp_path / "page.md"
    page.write_text(f"{plain_begin}\nuntagged stays\n{plain_end}\n\n{tag_begin}\nstale\n{tag_end}\n")
    repro.main(["--regime", "paper", "--report-only", "--out", str(out), "--docs", str(page), "--docs-tag", "full",
                "--no-progress"])
    text = page.read_text()
    assert "untagged stays" in text and "stale" not in text
    assert repro.diagnostics_table(res["rows"]) in text.split(tag_begin)[1]


@pytest.mark.parametrize("argv", [["--docs-tag", "full"], ["--docs", "p.md", "--docs-tag", "a b"],
                                  ["--docs", "p.md", "--docs-tag", "x-->"]])
def test_bad_docs_tags_are_refused(repro, argv, capsys):
    with pytest.raises(SystemExit):
        repro.parse_args(["--regime", "paper"] + argv)
    assert "--docs-tag must be letters, digits" in capsys.readouterr().err
