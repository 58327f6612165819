"""The rule that chooses BOON's default from the converged reproduction (examples/_boon_rule.py)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

PROBLEMS = ("heat", "stokes", "burgers_periodic", "burgers_dirichlet")


@pytest.fixture(scope="module")
def rule(load_example):
    return load_example("_boon_rule")


@pytest.fixture(scope="module")
def repro(load_example):
    return load_example("reproduce_boon")


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
    eligible = [m for m in rule.BENCHMARK_VARIANT
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
    errors = {}
    for prob in PROBLEMS:
        errors[(prob, "fno")] = [0.01, 0.01, 0.01]
        for model in rule.BENCHMARK_VARIANT:
            errors[(prob, model)] = [0.005, 0.005, 0.005]
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


def test_a_variant_undefined_somewhere_is_never_the_default(rule, repro):
    errors = {}
    for prob in PROBLEMS:
        errors[(prob, "fno")] = [0.01] * 3
        errors[(prob, "boon_hidden")] = [0.001] * 3  # much better wherever defined
        for model in ("boon", "boon_output", "boon_lift"):
            errors[(prob, model)] = [0.01] * 3
    runs = [r for r in _runs(errors) if not (r["model"] == "boon_hidden" and r["problem"] == "heat")]
    runs.append(dict(problem="heat", model="boon_hidden", seed=0, not_defined="n/a: Dirichlet faces only"))
    summary = repro.summarize(runs, list(PROBLEMS), ["fno", *rule.BENCHMARK_VARIANT])
    costs = {v: 1.0 for v in rule.BENCHMARK_VARIANT.values()}
    d = rule.choose_default(summary, costs, expected=[*PROBLEMS, "stokes_spacetime"])
    assert d["verdicts"]["boon_hidden"]["heat"] == "not defined"
    assert d["not_covered"] == ["stokes_spacetime"] and "stokes_spacetime" not in d["verdicts"]["boon"]
    assert d["default"] == "boon"  # level everywhere; boon_hidden is better on 3 problems but undefined on one
    assert d["better_on"]["boon_hidden"] == ["stokes", "burgers_periodic", "burgers_dirichlet"]
    md = rule.markdown(d, repro.MODEL_LABELS)
    assert "Better than the FNO (recommended there" in md and "not defined" in md
    assert "Not covered (no finished FNO run): stokes_spacetime." in md
    # over the cost cap: level everywhere but too slow
    slow = dict(costs, T2=rule.COST_CAP + 0.01)
    assert rule.choose_default(summary, slow)["default"] == "boon_output"


def test_costs_are_the_worst_configuration_of_the_benchmark_json(rule, tmp_path):
    ratios = {"T2": (1.1, 1.8, 1.3), "T2 + values in every layer": (1.2, 1.9, 1.4), "output only": (0.95, 0.9, 1.0),
              "output lift": (0.9, 1.0, 0.9)}
    rows = [dict(config=f"{family} config", variant=v, fwd_bwd_ratio=r)
            for v, rs in ratios.items() for family, r in zip(rule.COST_FAMILIES, rs)]
    path = tmp_path / "benchmark_boon.json"
    path.write_text(json.dumps({"results": rows}))
    assert rule.load_costs(path) == {v: max(rs) for v, rs in ratios.items()}
    assert rule.load_costs(None) is None
    # a partial benchmark (no space-time timing of one variant) would understate its cost
    path.write_text(json.dumps({"results": [r for r in rows if not (r["variant"] == "output lift"
                                                                    and r["config"].startswith("space-time"))]}))
    with pytest.raises(ValueError, match="costs: .* no space-time timing of variant 'output lift'"):
        rule.load_costs(path)


def test_benchmark_measures_every_variant_the_rule_compares(rule, load_example):
    bench = load_example("benchmark_boon")
    from boon_ext import Dirichlet, Neumann, Periodic

    assert set(rule.BENCHMARK_VARIANT.values()) == set(bench.VARIANTS)
    hidden = rule.BENCHMARK_VARIANT["boon_hidden"]
    assert bench.applies(hidden, [Dirichlet(left=0.0, dim=-2), Dirichlet(right=1.0, dim=-1)])
    assert not bench.applies(hidden, [Dirichlet(left=1.0), Neumann(right=0.0)])
    assert not bench.applies(hidden, Periodic())
    assert bench.applies("T2", Periodic())
