"""The rule that chooses BOON's default from the converged reproduction (experiments/boon_campaign/rule.py)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PROBLEMS = ("heat", "stokes", "burgers_periodic", "burgers_dirichlet")


@pytest.fixture(scope="module")
def rule(load_experiment):
    return load_experiment("boon_campaign.rule")


@pytest.fixture(scope="module")
def repro(load_experiment):
    return load_experiment("reproduce_boon")


def _runs(errors):
    """Run records as reproduce_boon writes them, from ``{(problem, model): [error per seed]}``."""
    runs = []
    for (prob, model), errs in errors.items():
        for seed, e in enumerate(errs):
            if e is None:
                continue
            runs.append(dict(problem=prob, model=model, seed=seed, rel_l2=e, rel_l2_interior=e, rel_l2_near_boundary=e,
                             train_seconds=1.0, epochs=500, boundary_error=0.0, boundary_error_float64=0.0,
                             converged=True))
    return runs


def _errors(rule, fno, variant):
    """``{(problem, model): [error per seed]}`` with the same 3 errors for every problem and variant."""
    errors = {}
    for prob in PROBLEMS:
        errors[(prob, "fno")] = [fno] * 3
        for model in rule.BENCHMARK_VARIANT:
            errors[(prob, model)] = [variant] * 3
    return errors


# per seed FNO error / variant error, drawn around 1 so that every verdict occurs; kept off the thresholds, where
# the ratio recomputed from the errors could round to either side
factors = st.lists(st.floats(0.8, 1.3).filter(lambda x: all(abs(x - t) > 1e-9 for t in (0.95, 1.0, 1.05))),
                   min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_choice_follows_the_rule(rule, repro, data):
    errors, ratio = {}, {}
    for prob in PROBLEMS:
        fno = data.draw(st.lists(st.floats(1e-3, 1e-1), min_size=3, max_size=3), label=f"fno {prob}")
        errors[(prob, "fno")] = fno
        for model in rule.BENCHMARK_VARIANT:
            f = data.draw(factors, label=f"{model} {prob}")
            ratio[(prob, model)] = f
            errors[(prob, model)] = [e / r for e, r in zip(fno, f)]
    costs = {v: data.draw(st.floats(0.8, 2.0), label=v) for v in rule.BENCHMARK_VARIANT.values()}
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    decision = rule.choose_default(summary, costs)

    def expected(model, prob):
        f = np.asarray(ratio[(prob, model)])
        med = float(np.median(f))
        if med >= rule.BETTER and f.min() >= 1.0:
            return "better"
        return "level" if med >= rule.LEVEL else "worse"

    for model in rule.BENCHMARK_VARIANT:
        for prob in PROBLEMS:
            assert decision["verdicts"][model][prob] == expected(model, prob)
    assert decision["no_better"] == [p for p in PROBLEMS
                                     if all(expected(m, p) != "better" for m in rule.BENCHMARK_VARIANT)]
    eligible = [m for m in rule.DEFAULT_CANDIDATES
                if all(v in ("level", "better") for v in decision["verdicts"][m].values())
                and costs[rule.BENCHMARK_VARIANT[m]] <= rule.COST_CAP]
    if not eligible:
        assert decision["default"] is None
        return
    d = decision["default"]
    assert d in eligible
    n_better = {m: len(decision["better_on"][m]) for m in eligible}
    assert n_better[d] == max(n_better.values())
    tied = [m for m in eligible if n_better[m] == n_better[d]]
    assert costs[rule.BENCHMARK_VARIANT[d]] == min(costs[rule.BENCHMARK_VARIANT[m]] for m in tied)


def test_too_few_seeds_and_missing_costs_choose_nothing(rule, repro):
    errors = _errors(rule, fno=0.01, variant=0.005)
    errors[("heat", "boon")] = [0.005, 0.005, None]  # seed 2 not finished
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    cheap = {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()}
    pending = rule.choose_default(summary, cheap)
    assert pending["default"] is None and pending["verdicts"]["boon"]["heat"] == "pending"
    assert pending["pending"] == ["boon on heat"] and "boon on heat" in pending["reason"]
    # the FNO of a seed missing: that seed cannot be compared, so 2 seeds remain
    errors[("heat", "boon")] = [0.005, 0.005, 0.005]
    errors[("stokes", "fno")] = [0.01, 0.01, None]
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    assert summary["stokes"]["boon"]["factor"]["n"] == 2
    assert rule.choose_default(summary, cheap)["verdicts"]["boon_output"]["stokes"] == "pending"
    errors[("stokes", "fno")] = [0.01, 0.01, 0.01]
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    unmeasured = rule.choose_default(summary, None)
    assert unmeasured["default"] is None and "training cost not measured" in unmeasured["reason"]
    # all better by 2x at equal cost: the tie goes to the first variant in the rule's order
    assert rule.choose_default(summary, cheap)["default"] == "boon"


def _uniform(rule, repro, fno=0.01, variant=0.01, hidden=None, problems=PROBLEMS):
    """Summary of 3 seeds with the same errors everywhere (``hidden``: boon_hidden's error, if different)."""
    errors = {}
    for prob in problems:
        errors[(prob, "fno")] = [fno] * 3
        for model in rule.BENCHMARK_VARIANT:
            errors[(prob, model)] = [hidden if model == "boon_hidden" and hidden else variant] * 3
    runs = [r for r in _runs(errors) if not (r["model"] == "boon_hidden" and r["problem"] == "heat")]
    if "heat" in problems:
        runs.append(dict(problem="heat", model="boon_hidden", seed=0, not_defined="n/a: Dirichlet faces only"))
    return repro.summarize(runs, list(problems), ["fno", *rule.BENCHMARK_VARIANT])


def test_values_in_every_layer_are_never_the_default_but_recommended_where_better(rule, repro):
    costs = {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()}
    d = rule.choose_default(_uniform(rule, repro, hidden=0.001), costs, expected=[*PROBLEMS, "stokes_spacetime"])
    assert d["verdicts"]["boon_hidden"]["heat"] == "not defined"
    assert d["not_covered"] == ["stokes_spacetime"] and "stokes_spacetime" not in d["verdicts"]["boon"]
    assert d["default"] == "boon"  # level everywhere; boon_hidden is 10x better where defined, but no candidate
    assert d["better_on"]["boon_hidden"] == ["stokes", "burgers_periodic", "burgers_dirichlet"]
    md = rule.markdown(d, repro.MODEL_LABELS)
    assert "Better than the FNO (recommended there" in md and "not defined" in md
    assert "Not covered (no finished FNO run): stokes_spacetime." in md
    # The outcome quotes the reason as the rule wrote it: it starts with the model's name, not capitalised.
    assert f"**Default: {repro.MODEL_LABELS['boon']}.** boon is level with the FNO on every problem" in md
    # Even where it is defined on every problem with runs, it is no candidate for the constructor's default.
    dirichlet_only = {p: e for p, e in _uniform(rule, repro, hidden=0.001).items() if p != "heat"}
    assert "boon_hidden" not in rule.DEFAULT_CANDIDATES
    assert rule.choose_default(dirichlet_only, costs)["default"] is None  # heat is required and missing
    # over the cost cap: level everywhere but too slow
    slow = dict(costs, T2=rule.COST_CAP + 0.01)
    assert rule.choose_default(_uniform(rule, repro), slow)["default"] == "boon_output"


def test_nothing_is_chosen_before_every_required_problem_has_runs(rule, repro):
    costs = {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()}
    partial = _uniform(rule, repro, variant=0.005, problems=("heat", "stokes"))
    d = rule.choose_default(partial, costs)
    assert d["default"] is None and d["missing"] == ["burgers_periodic", "burgers_dirichlet"]
    assert d["reason"] == "pending: no FNO run yet on burgers_periodic, burgers_dirichlet"
    # an optional problem with runs must be complete too
    full = _uniform(rule, repro, variant=0.005)
    full["stokes_spacetime"] = {"fno": full["stokes"]["fno"]}
    d = rule.choose_default(full, costs)
    assert d["default"] is None and "boon on stokes_spacetime" in d["pending"]


def test_thresholds_are_inclusive(rule):
    errors = dict(median=0.01, min=0.01, max=0.01)  # summarize's rel_l2 statistics (finite)

    def entry(median, lo, n=3):
        return dict(n_seeds=n, rel_l2=errors, factor=dict(median=median, min=lo, max=max(median, lo), n=n))

    fno = dict(n_seeds=3, rel_l2=errors)
    assert rule.verdict(entry(rule.BETTER, 1.0), fno) == "better"
    assert rule.verdict(entry(rule.BETTER, 0.999), fno) == "level"  # a seed below 1
    assert rule.verdict(entry(rule.LEVEL, 0.9), fno) == "level"
    assert rule.verdict(entry(rule.LEVEL - 1e-9, 0.9), fno) == "worse"
    assert rule.verdict(entry(2.0, 2.0, n=2), fno) == "pending"
    summary = {p: {"fno": fno, **{m: entry(1.0, 1.0) for m in rule.BENCHMARK_VARIANT}} for p in PROBLEMS}
    at_cap = {v: rule.COST_CAP for v in rule.BENCHMARK_VARIANT.values()}
    assert rule.choose_default(summary, at_cap)["default"] == "boon"
    over = {v: rule.COST_CAP + 1e-9 for v in rule.BENCHMARK_VARIANT.values()}
    assert rule.choose_default(summary, over)["default"] is None


def _full_benchmark(load_experiment, ratio=lambda config, variant: 1.0, repetitions=15):
    bench = load_experiment("benchmark_boon")
    return [dict(config=name, variant=v, fwd_bwd_ratio=ratio(name, v), repetitions=repetitions)
            for name, _, _, boon_kw in bench.configs() for v in bench.VARIANTS if bench.applies(v, boon_kw["boundary"])]


def test_costs_are_the_worst_configuration_of_a_full_benchmark(rule, load_experiment, tmp_path):
    def ratio(config, variant):  # distinct per row, the 2-D row the worst for T2
        return 1.0 + 0.01 * len(config) + (0.5 if (variant, config[:3]) == ("T2", "2-D") else 0.0)

    rows = _full_benchmark(load_experiment, ratio)
    path = tmp_path / "benchmark_boon.json"
    path.write_text(json.dumps({"results": rows}))
    costs = rule.load_costs(path)
    assert costs == {v: max(r["fwd_bwd_ratio"] for r in rows if r["variant"] == v) for v in costs}
    assert costs["T2"] == max(r["fwd_bwd_ratio"] for r in rows if r["config"].startswith("2-D") and r["variant"] == "T2")
    assert rule.load_costs(None) is None
    # a partial benchmark (--only / --variants) would understate a cost
    path.write_text(json.dumps({"results": [r for r in rows if "Neumann" not in r["config"]]}))
    with pytest.raises(ValueError, match=r"costs: .* lacks 1-D Neumann / T2"):
        rule.load_costs(path)
    path.write_text(json.dumps({"results": _full_benchmark(load_experiment, repetitions=5)}))
    with pytest.raises(ValueError, match=r"costs: .* \[5\] repetitions \(--quick\)"):
        rule.load_costs(path)
    path.write_text(json.dumps({"results": _full_benchmark(load_experiment, lambda c, v: float("nan"))}))
    with pytest.raises(ValueError, match="costs: .* not positive finite numbers"):
        rule.load_costs(path)
    path.write_text(json.dumps({"runs": []}))  # e.g. reproduce_boon's results.json by mistake
    with pytest.raises(ValueError, match="costs: expected the benchmark_boon.json"):
        rule.load_costs(path)
    with pytest.raises(ValueError, match="costs: expected the benchmark_boon.json"):
        rule.load_costs(tmp_path / "missing.json")


def test_benchmark_measures_every_variant_the_rule_compares(rule, repro, load_experiment):
    bench = load_experiment("benchmark_boon")
    from boon_ext import Dirichlet, Neumann, Periodic

    # the same BOONFNO settings as the reproduction's models
    assert {m: bench.VARIANTS[v] for m, v in rule.BENCHMARK_VARIANT.items()} == {
        m: repro.MODEL_KWARGS[m] for m in rule.BENCHMARK_VARIANT}
    hidden = rule.BENCHMARK_VARIANT["boon_hidden"]
    assert bench.applies(hidden, [Dirichlet(left=0.0, dim=-2), Dirichlet(right=1.0, dim=-1)])
    assert not bench.applies(hidden, [Dirichlet(left=1.0), Neumann(right=0.0)])
    assert not bench.applies(hidden, Periodic())
    assert bench.applies("T2", Periodic())


def test_summary_quotes_ratios_only_with_enough_seeds(rule, repro):
    errors = {}
    for prob in PROBLEMS:
        errors[(prob, "fno")] = [0.01, 0.012, 0.009]
        for model in rule.BENCHMARK_VARIANT:
            errors[(prob, model)] = [0.01, 0.01, 0.01]
    errors[("stokes", "boon")] = [0.008, 0.01, 0.006]  # FNO / T2: 1.25, 1.2, 1.5
    errors[("heat", "boon_output")] = [0.01, 0.01, None]  # seed 2 still training
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    decision = rule.choose_default(summary, {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()})
    text = rule.summary_markdown(decision, summary, {"boon": "T2", "boon_output": "output"}, "[t](t.md)")
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ")[1:] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")}
    heat, stokes = PROBLEMS.index("heat"), PROBLEMS.index("stokes")
    assert rows["T2"][stokes] == "1.25 [1.20..1.50], better"
    assert rows["output"][heat] == "pending (2 of 3 seeds)"
    assert "full table and curves: [t](t.md)" in text
    assert decision["default"] is None and f"**No default chosen yet**: {decision['reason']}." in text
    # Settled verdicts are stated even while others are pending: T2 is better on Stokes; on the two Burgers
    # problems every variant is level (median 1.0), on heat one variant is still pending.
    assert text.rstrip().endswith("Better than the FNO (recommended there, whatever its cost): T2 on stokes.\n"
                                  "No variant is better than the FNO on burgers_periodic, burgers_dirichlet: every "
                                  "variant there is level or worse over its seeds (see the table).")
    assert decision["no_better"] == ["burgers_periodic", "burgers_dirichlet"]
    # With every seed in, the outcome names the default chosen by the rule.
    errors[("heat", "boon_output")] = [0.01, 0.01, 0.01]
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    decision = rule.choose_default(summary, {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()})
    text = rule.summary_markdown(decision, summary, {"boon": "T2"})
    assert decision["default"] == "boon" and f"**Default: T2**: {decision['reason']}." in text
    assert "pending" not in text and "full table" not in text  # no source given


def test_a_diverged_run_blocks_the_choice_instead_of_counting_as_worse(rule, repro):
    errors = _errors(rule, fno=0.01, variant=0.01)
    errors[("stokes", "fno")] = [0.01, float("nan"), 0.01]  # seed 1 diverged
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    decision = rule.choose_default(summary, {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()})
    assert all(decision["verdicts"][m]["stokes"] == "not finite" for m in rule.BENCHMARK_VARIANT)
    assert decision["verdicts"]["boon"]["heat"] == "level"
    assert decision["default"] is None and decision["reason"].startswith("not finite") and "boon on stokes" in \
        decision["reason"]
    assert "stokes" not in decision["no_better"] and "heat" in decision["no_better"]


def test_table_says_how_many_seeds_a_ratio_covers(repro):
    errors = {("heat", "fno"): [0.01, None, 0.01], ("heat", "boon"): [0.005, 0.005, 0.005]}
    summary = repro.summarize(_runs(errors), ["heat"], ["fno", "boon"])
    row = [line for line in repro.markdown_table(summary, ["fno", "boon"]).splitlines() if "| heat | BOON" in line]
    assert "| 3 |" in row[0] and "2.00 [2.00..2.00] (2 seeds)" in row[0]


def test_an_infinite_variant_error_is_not_finite_rather_than_a_ratio_of_zero(rule, repro):
    errors = _errors(rule, fno=0.01, variant=0.01)
    errors[("heat", "boon_output")] = [0.01, float("inf"), 0.01]  # FNO / inf = 0.0: finite, median 1.0
    summary = repro.summarize(_runs(errors), list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    assert summary["heat"]["boon_output"]["factor"]["min"] == 0.0
    decision = rule.choose_default(summary, {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()})
    assert decision["verdicts"]["boon_output"]["heat"] == "not finite" and decision["default"] is None
    assert "boon_output on heat" in decision["reason"]
    text = rule.summary_markdown(decision, summary)
    assert "not finite (a diverged run)" in text and "nan" not in text
