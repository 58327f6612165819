"""README.md is a front page that holds: its snippets run as written, its commands are the ones CI runs, its links
resolve."""

import re
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()
BLOCKS = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code):
    exec(compile(code, str(README), "exec"), {})


def test_readme_shows_one_short_snippet_per_method():
    assert len(BLOCKS) == 2
    assert "from boon_ext" in BLOCKS[0] and "from probconserv_ext" in BLOCKS[1]
    assert all(len(b.strip().splitlines()) <= 5 for b in BLOCKS), [len(b.strip().splitlines()) for b in BLOCKS]


def test_readme_test_command_is_the_one_ci_runs():
    # .ci/run promises to run the README's test command verbatim.
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert len(ci) == 1 and ci[0] in TEXT.splitlines()


def test_readme_links_and_figure_exist():
    targets = [t for t in re.findall(r"\]\(([^)\s#]+)", TEXT) if not t.startswith("http")]
    assert "docs/images/quickstart.png" in targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing
