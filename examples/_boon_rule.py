"""The rule that chooses BOON's constructor default from the converged reproduction (``reproduce_boon.py``).

The rule was fixed before the converged runs finished (``results/boon_full/README.md``), so that the table decides
the default rather than the other way round. Per problem, each variant is compared with the FNO of the same seed
(same data, initial weights and batch order) through ``r = FNO error / variant error``:

1. **level** on a problem: median ``r >= LEVEL`` over the seeds. 5% because a converged run's test error still
   moves by about +-7% over its last 50 epochs, so 3 seeds cannot resolve smaller differences;
2. **better**: median ``r >= BETTER`` and every seed ``r >= 1``;
3. **the default** is the variant that is level (or better) on every problem and better on the most, among those
   whose training step costs at most ``COST_CAP`` times the FNO's in every benchmark configuration
   (``benchmark_boon.py``); ties go to the cheaper variant.

A variant that is not defined on a problem (values in the hidden layers need Dirichlet conditions) cannot be the
constructor's default, which must work for every condition; it is still recommended where it is better.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

LEVEL = 0.95
BETTER = 1.05
COST_CAP = 1.3
MIN_SEEDS = 3

# reproduce_boon.py model name -> benchmark_boon.py variant name (the same BOONFNO keyword arguments).
BENCHMARK_VARIANT = {
    "boon": "T2",
    "boon_hidden": "T2 + values in every layer",
    "boon_output": "output only",
    "boon_lift": "output lift",
}


def verdict(entry, fno_entry, min_seeds=MIN_SEEDS):
    """Classify one variant on one problem from ``reproduce_boon.summarize``'s entries.

    Returns one of ``"better"``, ``"level"``, ``"worse"``, ``"not defined"`` and ``"pending"`` (fewer than
    ``min_seeds`` seeds compared with the FNO of the same seed).
    """
    if entry is not None and "not_defined" in entry:
        return "not defined"
    if entry is None or fno_entry is None or "factor" not in entry:
        return "pending"
    if entry["factor"]["n"] < min_seeds:  # seeds with both the variant and the FNO finished
        return "pending"
    f = entry["factor"]
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
        worst[v] = max(worst.get(v, 0.0), float(row["fwd_bwd_ratio"]))
    return worst


def choose_default(summary, costs=None, min_seeds=MIN_SEEDS, expected=()):
    """Apply the rule to ``reproduce_boon.summarize``'s output.

    Parameters
    ----------
    summary : dict
        ``{problem: {model: entry}}``, with ``"fno"`` entries as the baseline.
    costs : dict, optional
        ``{benchmark variant: worst fwd+bwd ratio}`` (:func:`training_costs`). Without it no default is chosen.
    min_seeds : int
        Seeds needed per problem and variant before a verdict is given.
    expected : sequence of str
        Every problem of the reproduction. Those without a finished FNO run are listed as ``not_covered``: the
        rule decides on the problems that have runs, and the report says which were left out.

    Returns
    -------
    dict
        ``verdicts`` (``{model: {problem: verdict}}``), ``cost`` (``{model: ratio or None}``), ``better_on``
        (``{model: [problems]}``, the recommendation wherever a variant is better), ``default`` (a model name or
        None) and ``reason`` (one sentence).
    """
    problems = [p for p in summary if "fno" in summary[p]]
    models = list(BENCHMARK_VARIANT)
    verdicts = {m: {p: verdict(summary[p].get(m), summary[p]["fno"], min_seeds) for p in problems} for m in models}
    cost = {m: None if costs is None else costs.get(BENCHMARK_VARIANT[m]) for m in models}
    better_on = {m: [p for p in problems if verdicts[m][p] == "better"] for m in models}
    out = dict(rule=dict(level=LEVEL, better=BETTER, cost_cap=COST_CAP, min_seeds=min_seeds), problems=problems,
               not_covered=[p for p in expected if p not in problems], verdicts=verdicts, cost=cost,
               better_on=better_on, default=None)
    pending = [f"{m} on {p}" for m in models for p in problems if verdicts[m][p] == "pending"]
    out["pending"] = pending
    if not problems:
        return dict(out, reason="no problem has a finished FNO run yet")
    if pending:
        listed = ", ".join(pending) if len(pending) <= 4 else f"{len(pending)} (variant, problem) pairs (see the table)"
        return dict(out, reason=f"pending: fewer than {min_seeds} seeds compared with the FNO for {listed}")
    if costs is None or any(c is None for c in cost.values()):
        missing = [m for m in models if cost[m] is None]
        return dict(out, reason="training cost not measured for " + ", ".join(missing)
                    + " (pass the JSON that examples/benchmark_boon.py writes)")
    level_everywhere = [m for m in models if all(v in ("level", "better") for v in verdicts[m].values())]
    eligible = [m for m in level_everywhere if cost[m] <= COST_CAP]
    if not eligible:
        if level_everywhere:
            reason = (f"the variants level with the FNO on every problem ({', '.join(level_everywhere)}) all cost more "
                      f"than {COST_CAP}x the FNO per training step")
        else:
            reason = "no variant is level with the FNO on every problem"
        return dict(out, reason=reason)
    # Better on the most problems; ties to the cheaper variant, then to the order of BENCHMARK_VARIANT.
    best = min(eligible, key=lambda m: (-len(better_on[m]), cost[m], models.index(m)))
    return dict(out, default=best, reason=(
        f"{best} is level with the FNO on every problem, better on {len(better_on[best])} of {len(problems)}, and "
        f"costs {cost[best]:.2f}x the FNO per training step (cap {COST_CAP}x)"))


def markdown(decision, labels=None):
    """The decision as a Markdown section: verdicts per problem and variant, training cost, outcome."""
    labels = labels or {}
    problems, verdicts, cost = decision["problems"], decision["verdicts"], decision["cost"]
    rule = decision["rule"]
    lines = [
        "## Default chosen by the rule",
        "",
        f"Per problem and variant, `r` = FNO error / variant error for the same seed. Level: median `r >= "
        f"{rule['level']}`; better: median `r >= {rule['better']}` and every seed `r >= 1`; pending: fewer than "
        f"{rule['min_seeds']} seeds. The default is level on every problem, better on the most, at most "
        f"{rule['cost_cap']}x the FNO's training step (worst configuration of `examples/benchmark_boon.py`).",
        "",
        "| variant | " + " | ".join(problems) + " | training step / FNO (worst) |",
        "|---|" + "---|" * len(problems) + "---|",
    ]
    for m, per_problem in verdicts.items():
        c = cost[m]
        c = "not measured" if c is None or (isinstance(c, float) and math.isnan(c)) else f"{c:.2f}"
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(per_problem[p] for p in problems) + f" | {c} |")
    outcome = f"**Default: {labels.get(decision['default'], decision['default'])}.**" if decision["default"] else \
        "**No default chosen yet.**"
    lines += ["", f"{outcome} {decision['reason'][0].upper() + decision['reason'][1:]}."]
    if decision.get("not_covered"):
        lines.append(f"Not covered (no finished FNO run): {', '.join(decision['not_covered'])}.")
    recommend = [f"{labels.get(m, m)} on {', '.join(ps)}" for m, ps in decision["better_on"].items() if ps]
    if recommend:
        lines.append("Better than the FNO (recommended there, whatever its cost): " + "; ".join(recommend) + ".")
    return "\n".join(lines) + "\n"


# Configuration families (name prefixes in benchmark_boon.py) over which the cost cap holds.
COST_FAMILIES = ("1-D", "2-D", "space-time")


def load_costs(path):
    """Read ``benchmark_boon.json`` and return :func:`training_costs` of it (``None`` for no path).

    Raises
    ------
    ValueError
        If a variant was not timed in every family of ``COST_FAMILIES`` (a partial run, e.g. ``--only``), whose
        worst ratio would understate the cost.
    """
    if path is None:
        return None
    bench = json.loads(Path(path).read_text())
    for variant in BENCHMARK_VARIANT.values():
        timed = [r["config"] for r in bench["results"] if r["variant"] == variant]
        missing = [f for f in COST_FAMILIES if not any(c.startswith(f) for c in timed)]
        if missing:
            raise ValueError(f"costs: {path} has no {', '.join(missing)} timing of variant {variant!r}; expected a "
                             "full run of examples/benchmark_boon.py (without --only or --variants)")
    return training_costs(bench)
