import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# The tests run many small tensor ops, for which a second intra-op thread costs more in synchronisation than it
# gains (and stalls whenever the machine is shared).
torch.set_num_threads(1)

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# The experiments are a package of the clone, not of the installed wheel: importable from its root, also when pytest
# is started by its own entry point (which, unlike ``python -m pytest``, does not put the working folder on the path).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def load_experiment():
    """A function that imports ``experiments.NAME`` (e.g. ``"reproduce_boon"``, ``"boon_campaign.rule"``)."""
    return lambda name: importlib.import_module(f"experiments.{name}")


@pytest.fixture(scope="session")
def load_example():
    """A function that imports ``examples/NAME.py`` as a fresh module (the examples are scripts, not a package)."""

    def load(name):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
