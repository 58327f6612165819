"""The rule that chooses BOON's constructor default from the converged reproduction (``experiments/reproduce_boon.py``).

The rule was fixed before the converged runs finished (``results/boon_full/README.md``), so that the table decides
the default rather than the other way round. Per problem, each variant is compared with the FNO of the same seed
(same data, initial weights and batch order) through ``r = FNO error / variant error``:

1. **level** on a problem: median ``r >= LEVEL`` over the seeds. 5% because a run's test error still moves by
   about +-7% over its last 50 epochs of training, so 3 seeds cannot resolve smaller differences;
2. **better**: median ``r >= BETTER`` and every seed ``r >= 1``;
3. **the default** is the candidate that is level (or better) on every problem and better on the most, among those
   whose training step costs at most ``COST_CAP`` times the FNO's in every configuration of ``benchmark_boon.py``;
   ties go to the cheaper variant.

Every problem of ``REQUIRED_PROBLEMS`` must have ``MIN_SEEDS`` seeds of every variant before anything is chosen;
another problem with finished runs (space-time Stokes, Stokes at viscosity 0.01) enters the rule as soon as it has
an FNO run, and must then be complete too. Values in the hidden layers need Dirichlet conditions, so that variant
is no candidate for the constructor's default, which must work for every condition; like every variant, it is
recommended wherever it is better. Where every variant has its verdict and none is better, the report says so.

Added on 2026-11-30, before any problem had its 3 seeds: a NaN or infinite error of a variant or of its FNO gives
the verdict "not finite" and blocks the choice (before, a diverged run would have been classified by the
thresholds: a NaN ratio as "worse", an infinite variant error as a ratio of 0). The thresholds are unchanged.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

LEVEL = 0.95
BETTER = 1.05
COST_CAP = 1.3
MIN_SEEDS = 3
# The campaign's problems (results/boon_full/README.md): the rule decides nothing before all of them are complete.
REQUIRED_PROBLEMS = ("heat", "stokes", "burgers_periodic", "burgers_dirichlet")

# reproduce_boon.py model name -> benchmark_boon.py variant name (the same BOONFNO keyword arguments).
BENCHMARK_VARIANT = {
    "boon": "T2",
    "boon_hidden": "T2 + values in every layer",
    "boon_output": "output only",
    "boon_lift": "output lift",
}
# Variants defined for every kind of condition, hence possible constructor defaults.
DEFAULT_CANDIDATES = ("boon", "boon_output", "boon_lift")


def verdict(entry, fno_entry, min_seeds=MIN_SEEDS):
    """Classify one variant on one problem from ``report.summarize``'s entries.

    Returns one of ``"better"``, ``"level"``, ``"worse"``, ``"not defined"``, ``"pending"`` (fewer than
    ``min_seeds`` seeds compared with the FNO of the same seed) and ``"not finite"`` (an error of the variant or
    of the FNO is NaN or infinite: a diverged run, which no threshold may silently classify; an infinite variant
    error would otherwise give a ratio of 0, which is finite).
    """
    if entry is not None and "not_defined" in entry:
        return "not defined"
    if entry is None or fno_entry is None or "factor" not in entry:
        return "pending"
    if entry["factor"]["n"] < min_seeds:  # seeds with both the variant and the FNO finished
        return "pending"
    f = entry["factor"]
    errors = [e["rel_l2"][k] for e in (entry, fno_entry) for k in ("median", "min", "max")]
    if not all(math.isfinite(v) for v in errors + [f[k] for k in ("median", "min", "max")]):
        return "not finite"
    if f["median"] >= BETTER and f["min"] >= 1.0:
        return "better"
    return "level" if f["median"] >= LEVEL else "worse"


def training_costs(benchmark):
    """Worst fwd+bwd ratio (BOON-FNO / FNO) per benchmark variant over its configurations.

    ``benchmark`` is the dict that ``benchmark_boon.py`` writes to ``benchmark_boon.json``.
    """
    worst = {}
    for row in benchmark["results"]:
        v = row["variant"]
        worst[v] = max(worst.get(v, -math.inf), float(row["fwd_bwd_ratio"]))
    return worst


def choose_default(summary, costs=None, min_seeds=MIN_SEEDS, expected=(), required=REQUIRED_PROBLEMS,
                   variants=None, candidates=DEFAULT_CANDIDATES):
    """Apply the rule to ``report.summarize``'s output.

    Parameters
    ----------
    summary : dict
        ``{problem: {model: entry}}``, with ``"fno"`` entries as the baseline.
    costs : dict, optional
        ``{benchmark variant: worst fwd+bwd ratio}`` (:func:`load_costs`). Without it no default is chosen.
    min_seeds : int
        Seeds needed per problem and variant before a verdict is given.
    expected : sequence of str
        Further problems to report as ``not_covered`` while they have no FNO run (they do not block the choice).
    required : sequence of str
        The problems that must all be complete before anything is chosen (default: the first campaign's; the
        hard-regime campaign passes its own cells, ``"<problem>/<split>"``).
    variants : dict, optional
        ``{model: benchmark variant name or None}``: the models given a verdict, and the benchmark row of each
        one's training cost (None: not a BOON variant, never costed; default :data:`BENCHMARK_VARIANT`).
    candidates : sequence of str
        The models that may become the constructor's default (each must be in ``variants`` with a cost).

    Returns
    -------
    dict
        ``verdicts`` (``{model: {problem: verdict}}``), ``cost`` (``{model: ratio or None}``), ``better_on``
        (``{model: [problems]}``, the recommendation wherever a variant is better), ``pending`` (the
        (variant, problem) pairs still short of seeds), ``missing`` (required problems without an FNO run),
        ``not_covered``, ``default`` (a model name or None) and ``reason`` (one sentence).
    """
    required = tuple(required)
    variants = dict(BENCHMARK_VARIANT if variants is None else variants)
    candidates = tuple(candidates)
    for m in candidates:
        if m not in variants or variants[m] is None:
            raise ValueError(f"candidates must be models of variants with a benchmark row, got {m!r}")
    missing = [p for p in required if "fno" not in summary.get(p, {})]
    problems = [p for p in required if p not in missing]
    problems += [p for p in summary if p not in required and "fno" in summary[p]]
    models = list(variants)
    verdicts = {m: {p: verdict(summary[p].get(m), summary[p]["fno"], min_seeds) for p in problems} for m in models}
    cost = {m: None if costs is None or variants[m] is None else costs.get(variants[m]) for m in models}
    better_on = {m: [p for p in problems if verdicts[m][p] == "better"] for m in models}
    pending = [f"{m} on {p}" for m in models for p in problems if verdicts[m][p] == "pending"]
    # Problems where every variant has its verdict and none is better: said plainly, not left to the reader.
    no_better = [p for p in problems if all(verdicts[m][p] in ("better", "level", "worse", "not defined")
                                            for m in models)
                 and not any(verdicts[m][p] == "better" for m in models)]
    not_finite = [f"{m} on {p}" for m in models for p in problems if verdicts[m][p] == "not finite"]
    out = dict(rule=dict(level=LEVEL, better=BETTER, cost_cap=COST_CAP, min_seeds=min_seeds,
                         required=list(required), candidates=list(candidates)),
               problems=problems, missing=missing,
               not_covered=[p for p in expected if p not in problems and p not in missing],
               verdicts=verdicts, cost=cost, better_on=better_on, no_better=no_better, pending=pending,
               default=None)
    if missing:
        return dict(out, reason="pending: no FNO run yet on " + ", ".join(missing))
    if not_finite:
        return dict(out, reason=f"not finite: a NaN or infinite error (a diverged run) for {_listed(not_finite)}; "
                    "nothing is chosen until those runs are investigated")
    if pending:
        return dict(out, reason=f"pending: fewer than {min_seeds} seeds compared with the FNO for {_listed(pending)}")
    if costs is None or any(cost[m] is None for m in candidates):
        unmeasured = [m for m in candidates if cost[m] is None]
        return dict(out, reason="training cost not measured for " + ", ".join(unmeasured)
                    + " (pass the JSON that experiments/benchmark_boon.py writes)")
    level_everywhere = [m for m in candidates
                        if all(v in ("level", "better") for v in verdicts[m].values())]
    eligible = [m for m in level_everywhere if cost[m] <= COST_CAP]
    if not eligible:
        if level_everywhere:
            reason = (f"the candidates level with the FNO on every problem ({', '.join(level_everywhere)}) all cost "
                      f"more than {COST_CAP}x the FNO per training step")
        else:
            reason = "no candidate is level with the FNO on every problem"
        return dict(out, reason=reason)
    # Better on the most problems; ties to the cheaper variant, then to the order of the candidates.
    best = min(eligible, key=lambda m: (-len(better_on[m]), cost[m], candidates.index(m)))
    return dict(out, default=best, reason=(
        f"{best} is level with the FNO on every problem, better on {len(better_on[best])} of {len(problems)}, and "
        f"costs {cost[best]:.2f}x the FNO per training step (cap {COST_CAP}x)"))


def _listed(pairs):
    """``"m on p"`` pairs for a reason: named when a few, counted when many."""
    return ", ".join(pairs) if len(pairs) <= 4 else f"{len(pairs)} (variant, problem) pairs (see the table)"


def markdown(decision, labels=None, heading="##"):
    """The decision as a Markdown section (``heading``: its level): verdicts per problem and variant, cost, outcome."""
    labels = labels or {}
    problems, verdicts, cost = decision["problems"], decision["verdicts"], decision["cost"]
    rule = decision["rule"]
    lines = [
        f"{heading} Default chosen by the rule",
        "",
        f"Per problem and variant, `r` = FNO error / variant error for the same seed. Level: median `r >= "
        f"{rule['level']}`; better: median `r >= {rule['better']}` and every seed `r >= 1`; pending: fewer than "
        f"{rule['min_seeds']} seeds. The default is the candidate ({', '.join(rule['candidates'])}) that is level on "
        f"every problem ({', '.join(rule['required'])} at least) and better on the most, at most {rule['cost_cap']}x "
        "the FNO's training step (worst configuration of `python -m experiments.benchmark_boon`).",
        "",
        "| variant | " + " | ".join(problems) + " | training step / FNO (worst) |",
        "|---|" + "---|" * len(problems) + "---|",
    ]
    for m, per_problem in verdicts.items():
        c = "not measured" if cost[m] is None else f"{cost[m]:.2f}"
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(per_problem[p] for p in problems) + f" | {c} |")
    outcome = f"**Default: {labels.get(decision['default'], decision['default'])}.**" if decision["default"] else \
        "**No default chosen yet.**"
    reason = decision["reason"]
    if not decision["default"]:  # a sentence of prose; a chosen default's reason starts with its model name
        reason = reason[0].upper() + reason[1:]
    lines += ["", f"{outcome} {reason}."]
    if decision.get("not_covered"):
        lines.append(f"Not covered (no finished FNO run): {', '.join(decision['not_covered'])}.")
    lines += findings(decision, labels)
    return "\n".join(lines) + "\n"


def findings(decision, labels=None):
    """Sentences on where a variant beats the FNO (recommended there) and where none does, one per line."""
    labels = labels or {}
    lines = []
    recommend = [f"{labels.get(m, m)} on {', '.join(ps)}" for m, ps in decision["better_on"].items() if ps]
    if recommend:
        lines.append("Better than the FNO (recommended there, whatever its cost): " + "; ".join(recommend) + ".")
    if decision["no_better"]:
        lines.append("No variant is better than the FNO on " + ", ".join(decision["no_better"]) + ": every variant "
                     "there is level or worse over its seeds (see the table).")
    return lines


def summary_markdown(decision, summary, labels=None, source=None):
    """The decision in a few lines, for a page that quotes it (``docs/guide/results.md``): per problem and variant,
    the median FNO / variant ratio with its spread and verdict, and the outcome.

    A ratio is shown only once it has ``min_seeds`` seeds; before that a cell says how many seeds it has, so the page
    claims nothing the rule would not. ``source``: Markdown naming where the full table is (a link), or ``None``.
    """
    labels = labels or {}
    problems, n_min = decision["problems"], decision["rule"]["min_seeds"]

    def cell(m, p):
        v = decision["verdicts"][m][p]
        f = (summary.get(p, {}).get(m) or {}).get("factor")
        if v == "not defined":
            return "not defined"
        if v == "pending":
            return f"pending ({0 if f is None else f['n']} of {n_min} seeds)"
        if v == "not finite":
            return "not finite (a diverged run)"
        return f"{f['median']:.2f} [{f['min']:.2f}..{f['max']:.2f}], {v}"

    lines = [f"FNO error / variant error on the same seed, median [min..max] over {n_min} or more seeds, and the "
             f"rule's verdict (level: median >= {decision['rule']['level']}; better: median >= "
             f"{decision['rule']['better']} and every seed >= 1)" + (f"; full table and curves: {source}" if source
                                                                  else "") + ".",
             "",
             "| variant | " + " | ".join(problems) + " |",
             "|---|" + "---|" * len(problems)]
    lines += [f"| {labels.get(m, m)} | " + " | ".join(cell(m, p) for p in problems) + " |"
              for m in decision["verdicts"]]
    outcome = (f"**Default: {labels.get(decision['default'], decision['default'])}**" if decision["default"]
               else "**No default chosen yet**")
    lines += ["", f"{outcome}: {decision['reason']}."]
    lines += findings(decision, labels)
    return "\n".join(lines) + "\n"


def _benchmark_script():
    """``experiments.benchmark_boon``: its configurations and variants define a complete cost table."""
    return importlib.import_module("experiments.benchmark_boon")


def load_costs(path):
    """Read ``benchmark_boon.json`` and return :func:`training_costs` of it (``None`` for no path).

    Raises
    ------
    ValueError
        If the file is not a ``benchmark_boon.json``, lacks a (configuration, variant) pair of the full benchmark
        (a run with ``--only`` or ``--variants``, whose worst ratio would understate the cost), was a ``--quick``
        run, or holds a ratio that is not a positive finite number.
    """
    if path is None:
        return None
    try:
        bench = json.loads(Path(path).read_text())
        rows = {(r["config"], r["variant"]): r for r in bench["results"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"costs: expected the benchmark_boon.json of experiments/benchmark_boon.py, could not read "
                         f"{path}: {err!r}") from err
    script = _benchmark_script()
    needed = [(name, v) for name, _, _, boon_kw in script.configs() for v in script.VARIANTS
              if script.applies(v, boon_kw["boundary"])]
    absent = [f"{c} / {v}" for c, v in needed if (c, v) not in rows]
    if absent:
        raise ValueError(f"costs: {path} lacks {', '.join(absent)}; expected a full run of "
                         "experiments/benchmark_boon.py (without --only or --variants)")
    quick = sorted({r["repetitions"] for r in rows.values() if r.get("repetitions", 0) < script.FULL_REPETITIONS})
    if quick:
        raise ValueError(f"costs: {path} was timed with {quick} repetitions (--quick); expected the full "
                         f"{script.FULL_REPETITIONS}")
    bad = [f"{c} / {v}: {r['fwd_bwd_ratio']!r}" for (c, v), r in rows.items()
           if not (isinstance(r["fwd_bwd_ratio"], (int, float)) and math.isfinite(r["fwd_bwd_ratio"])
                   and r["fwd_bwd_ratio"] > 0)]
    if bad:
        raise ValueError(f"costs: {path} has ratios that are not positive finite numbers ({', '.join(bad)})")
    return training_costs(bench)
