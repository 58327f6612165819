"""Every Python block of the user guide (docs/guide/*.md) runs as written, page by page, in order."""

import re
import textwrap
import warnings
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide"
PAGES = sorted(GUIDE.glob("*.md"))


def blocks(page):
    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)]


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.stem)
def test_guide_page_runs(page, tmp_path, monkeypatch):
    # One namespace per page: a later block may use what an earlier one defined, as a reader does.
    monkeypatch.chdir(tmp_path)  # blocks that write files (checkpoints) write here
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a guide snippet shows the quiet way to do a task
        for i, code in enumerate(blocks(page)):
            exec(compile(code, f"{page.name}, block {i}", "exec"), namespace)


def test_every_task_page_has_runnable_blocks_and_the_index_links_them():
    index = (GUIDE / "index.md").read_text()
    linked = set(re.findall(r"\]\(([a-z_]+\.md)\)", index))
    pages = {p.name for p in PAGES} - {"index.md"}
    assert linked == pages, (linked, pages)
    # The results page reports measurements and states no code; every other page shows its task in code.
    assert all(blocks(GUIDE / name) for name in pages - {"results.md"})
