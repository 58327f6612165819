"""Packaging: version metadata, the wheel's contents, citation metadata, and the API reference build."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import yaml

import boon_ext
import probconserv_ext

ROOT = Path(__file__).resolve().parents[1]
DIST = "physics-constrained-operators"


def test_versions_come_from_the_installed_metadata():
    version = importlib.metadata.version(DIST)
    assert boon_ext.__version__ == version
    assert probconserv_ext.__version__ == version
    assert "__version__" in boon_ext.__all__ and "__version__" in probconserv_ext.__all__


def test_citation_cites_both_papers_and_matches_the_package():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["version"] == importlib.metadata.version(DIST)
    assert cff["license"] == "MIT"
    refs = {r["title"]: r for r in cff["references"]}
    boon = refs["Guiding continuous operator learning through physics-based boundary constraints"]
    probconserv = refs["Learning physical models that can respect conservation laws"]
    assert boon["authors"][0]["family-names"] == "Saad" and "ICLR" in boon["conference"]["name"]
    assert probconserv["authors"][0]["family-names"] == "Hansen" and "ICML" in probconserv["conference"]["name"]
    assert boon["year"] == probconserv["year"] == 2023


def test_wheel_ships_the_packages_and_the_license_but_no_tests(tmp_path):
    # Build from a copy, so the shared checkout gets no build/ or egg-info folders from the test.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("boon_ext", "probconserv_ext", "tests"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "boon_ext/__init__.py" in names and "probconserv_ext/__init__.py" in names
    assert "boon_ext/config.py" in names and "boon_ext/losses.py" in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    license_text = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("licenses/LICENSE"))).decode()
    assert license_text.startswith("MIT License")


def _build_docs(out, *packages, pythonpath=None):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_docs.py"), "--out", str(out), *packages],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )


def test_api_reference_builds_and_every_reference_resolves(tmp_path):
    result = _build_docs(tmp_path / "api")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all docstring references resolve" in result.stdout
    for page in ("boon_ext.html", "boon_ext/conditions.html", "boon_ext/config.html", "boon_ext/losses.html",
                 "probconserv_ext.html", "probconserv_ext/layer.html"):
        assert (tmp_path / "api" / page).is_file(), page
    html = (tmp_path / "api" / "boon_ext" / "config.html").read_text()
    assert "build_model" in html and "load_config" in html
    # Sphinx's "~" (show the last component) is not pdoc's: no page shows it before a reference.
    tilde = [p.name for p in (tmp_path / "api").rglob("*.html") if "<code>~" in p.read_text()]
    assert not tilde, tilde
    # The start page is the user guide's index, then each package's public names linked to their entries.
    start = (tmp_path / "api" / "index.html").read_text()
    assert "User guide" in start and 'href="guide/boon_conditions.html"' in start
    assert start.index("User guide") < start.index("Public API") < start.index("All modules")
    for package in (boon_ext, probconserv_ext):
        for name in package.__all__:
            if not name.startswith("_"):
                assert f'{package.__name__}.html#{name}"' in start, name
    assert (tmp_path / "api" / "guide" / "training.html").is_file()


def test_api_reference_build_fails_on_a_broken_reference(tmp_path):
    pkg = tmp_path / "pkgs" / "docpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        """A package whose docstrings hold good and broken references.

        See :class:`Good` and :func:`~docpkg.helper`, but also :func:`vanished_function`.
        """


        def helper():
            """Uses :meth:`Good.run` and :class:`int`."""


        class Good:
            """Calls :meth:`run`; :meth:`stop` does not exist."""

            def run(self):
                """Returns :attr:`Missing.value`."""
    '''))
    result = _build_docs(tmp_path / "api", "docpkg", pythonpath=tmp_path / "pkgs")
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(broken) == 3, broken
    assert any("vanished_function" in b for b in broken)
    assert any("docpkg.Good:" in b and "stop" in b for b in broken)
    assert any("docpkg.Good.run:" in b and "Missing.value" in b for b in broken)
    assert not any("helper" in b or "`int`" in b for b in broken)
    assert (tmp_path / "api" / "docpkg.html").is_file()  # the reference is still written, for inspection


def test_changelog_has_an_entry_for_the_installed_version():
    assert f"## [{importlib.metadata.version(DIST)}]" in (ROOT / "CHANGELOG.md").read_text()
