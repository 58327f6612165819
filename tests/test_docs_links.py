"""Every relative link of the repository's Markdown pages resolves: the file exists and, where the link names a
section (``page.md#section``), the page has a heading with that GitHub anchor."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", ".pytest_cache", "node_modules", "outputs"}
PAGES = sorted(p for p in ROOT.rglob("*.md") if not SKIP & set(p.relative_to(ROOT).parts))


def _without_code(text):
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_anchor_rule():
    assert anchor("Where BOON pays: the hard-regime campaign (in progress)") == \
        "where-boon-pays-the-hard-regime-campaign-in-progress"
    assert anchor("The `wall_inputs` module") == "the-wall_inputs-module"


def test_every_relative_link_and_section_exists():
    assert len(PAGES) > 10
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text())):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, section = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif section and dest.suffix == ".md":
                heads = {anchor(h) for h in re.findall(r"^#+\s+(.*)$", _without_code(dest.read_text()), flags=re.M)}
                if section not in heads:
                    broken.append(f"{page.relative_to(ROOT)}: {target} (no such section)")
    assert not broken, broken
