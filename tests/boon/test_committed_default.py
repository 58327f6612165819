"""The constructor's default is the one the committed reproduction chose (results/boon_full), by the current rule.

``python -m experiments.reproduce_boon --report-only`` writes the rule's decision into ``results/boon_full/results.json``.
These tests tie that file to the code: the decision must be what ``experiments/boon_campaign/rule.py`` gives on the committed
summary and costs (so neither the rule nor the results change without the other being regenerated), and
``BOONFNO``'s default keywords must be the chosen variant's. While the rule is pending, the default stays output
enforcement, the variant chosen for wrapped models by ``experiments/wrap_checkpoint_accuracy.py``.
"""

import inspect
import json
from pathlib import Path

import pytest

from boon_ext import BOONFNO

RESULTS = Path(__file__).resolve().parents[2] / "results" / "boon_full"
BOON_KEYWORDS = dict(kernel_correction=False, lift_width=None, hidden_values=False)  # a variant sets some of these


@pytest.fixture(scope="module")
def committed():
    return json.loads((RESULTS / "results.json").read_text())


def test_committed_decision_is_what_the_rule_gives_on_the_committed_runs(load_experiment, committed):
    rule = load_experiment("boon_campaign.rule")
    costs = rule.load_costs(RESULTS / "benchmark_boon.json")
    again = rule.choose_default(committed["summary"], costs, expected=committed["decision"]["not_covered"])
    # through JSON, as the report writes it (tuples become lists)
    assert json.loads(json.dumps(again)) == committed["decision"], \
        "results/boon_full/results.json holds another decision than the rule gives; regenerate it with " \
        "reproduce_boon.py --report-only"


def test_constructor_default_is_the_chosen_variant(load_experiment, committed):
    repro = load_experiment("reproduce_boon")
    decision = committed["decision"]
    if decision["default"] is None:
        # Any other outcome (no variant level everywhere) needs a decision written up, not a silent default.
        assert decision["reason"].startswith("pending"), decision["reason"]
        chosen = "boon_output"
    else:
        chosen = decision["default"]
    params = inspect.signature(BOONFNO.__init__).parameters
    actual = {k: params[k].default for k in BOON_KEYWORDS}
    assert actual == {**BOON_KEYWORDS, **repro.MODEL_KWARGS[chosen]}, chosen
