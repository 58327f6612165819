"""The constructor's default is the one the committed campaigns chose (results/boon_full, results/boon_hard), by the rule.

``python -m experiments.reproduce_boon [--campaign hard] --report-only`` writes the rule's decision into the
campaign's ``results.json``. These tests tie each file to the code: the decision must be what
``experiments/boon_campaign/rule.py`` gives on the committed summary and costs (so neither the rule nor the results
change without the other being regenerated), and ``BOONFNO``'s default keywords must be the chosen variant's in
every campaign that has chosen. While a campaign's rule is pending, the default stays output enforcement, the variant
chosen for wrapped models by ``experiments/wrap_checkpoint_accuracy.py``.
"""

import inspect
import json
from pathlib import Path

import pytest

from boon_ext import BOONFNO

RESULTS = Path(__file__).resolve().parents[2] / "results"
# Both campaigns are costed from the first campaign's benchmark (the --costs of their documented commands).
COSTS = RESULTS / "boon_full" / "benchmark_boon.json"
BOON_KEYWORDS = dict(kernel_correction=False, lift_width=None, hidden_values=False)  # a variant sets some of these
CAMPAIGNS = ("boon_full", "boon_hard")


def _committed(name):
    return json.loads((RESULTS / name / "results.json").read_text())


def _rule_again(load_experiment, name, committed):
    """The decision the current rule gives on a campaign's committed summary, with that campaign's arguments."""
    rule = load_experiment("boon_campaign.rule")
    costs = rule.load_costs(COSTS)
    if name == "boon_full":
        return rule.choose_default(committed["summary"], costs, expected=committed["decision"]["not_covered"])
    hard, campaign = load_experiment("boon_campaign.hard"), load_experiment("boon_campaign.hard_campaign")
    return rule.choose_default(committed["summary"], costs, required=hard.make_config(False)["cells"],
                               variants=campaign.RULE_VARIANTS, candidates=campaign.RULE_CANDIDATES)


def _model_kwargs(load_experiment, name):
    if name == "boon_full":
        return load_experiment("reproduce_boon").MODEL_KWARGS
    return load_experiment("boon_campaign.hard").MODEL_KWARGS


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_committed_decision_is_what_the_rule_gives_on_the_committed_runs(load_experiment, name):
    committed = _committed(name)
    again = _rule_again(load_experiment, name, committed)
    # through JSON, as the report writes it (tuples become lists)
    assert json.loads(json.dumps(again)) == committed["decision"], \
        f"results/{name}/results.json holds another decision than the rule gives; regenerate it with " \
        "reproduce_boon.py --report-only (and the campaign's --costs)"


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_constructor_default_is_the_chosen_variant(load_experiment, name):
    decision = _committed(name)["decision"]
    if decision["default"] is None:
        # Any other outcome (no variant level everywhere) needs a decision written up, not a silent default.
        assert decision["reason"].startswith("pending"), decision["reason"]
        chosen = "boon_output"
    else:
        chosen = decision["default"]
    params = inspect.signature(BOONFNO.__init__).parameters
    actual = {k: params[k].default for k in BOON_KEYWORDS}
    assert actual == {**BOON_KEYWORDS, **_model_kwargs(load_experiment, name)[chosen]}, (name, chosen)
