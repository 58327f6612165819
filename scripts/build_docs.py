"""Build the HTML API reference from the docstrings with pdoc, and fail on broken references.

    python scripts/build_docs.py                       # boon_ext and probconserv_ext -> build/api/
    python scripts/build_docs.py --out DIR pkg [pkg]   # other packages or folder

The start page (``index.html``) is the user guide's index (``docs/guide/index.md``) followed by the public names of
each package (its ``__all__``), linked to their entries, then every module; the guide's pages are rendered next to
it (``guide/*.html``).

Every public module of the packages is rendered (numpydoc docstrings). pdoc leaves a cross-reference it cannot
resolve as plain code text, silently, so after rendering every Sphinx-style role in a docstring
(``:class:`~boon_ext.Dirichlet```, ``:func:`parse_boundary```, ``:meth:`BoundarySpec.check_values``` ...) is
resolved the way a reader would: as an absolute name, then relative to the docstring's class, its module and
the module's package. A role that resolves to nothing, or to a private object of the documented packages (not
in the reference), is reported and the exit status is 1; a warning from pdoc itself also fails the build.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import os
import pkgutil
import re
import sys
import warnings
from pathlib import Path

ROLE = re.compile(r":(?:py:)?(?:mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")
ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"


def _plain_role(m: re.Match) -> str:
    """A Sphinx role as pdoc can link it: the target alone, without ``~`` / ``!`` or a ``title <target>`` form.

    pdoc turns ``:class:`x``` into the code span ``x`` and links it when ``x`` names a documented object; it does not
    know Sphinx's ``~`` (show the last component only), so ``~boon_ext.Dirichlet`` stayed a literal, unlinked
    ``~`` name. The full dotted name is shown instead, linked.
    """
    return m.group(0).replace(m.group(1), _target(m.group(1)) + ("()" if m.group(1).endswith("()") else ""))


def _patch_pdoc_roles():
    """Make pdoc's reST conversion see plain role targets (see :func:`_plain_role`)."""
    import pdoc.docstrings

    if getattr(pdoc.docstrings.rst, "_plain_roles", False):
        return
    original = pdoc.docstrings.rst

    def rst(contents, source_file):
        return original(ROLE.sub(_plain_role, contents), source_file)

    rst._plain_roles = True
    pdoc.docstrings.rst = rst
    pdoc.docstrings.convert.cache_clear()


def public_modules(packages):
    """Names of the packages and their submodules, without private ones (a component starting with ``_``)."""
    names = []
    for name in packages:
        pkg = importlib.import_module(name)
        names.append(name)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=name + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def _lookup(dotted: str):
    """The object a dotted name denotes (importing its module part), or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # a module that fails to import for another reason is not a reference target
            return None
        for attr in parts[i:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                return None
        return obj
    if len(parts) == 1 and hasattr(builtins, dotted):
        return getattr(builtins, dotted)
    return None


def _target(role_text: str) -> str:
    text = role_text.strip()
    m = re.search(r"<([^>]+)>$", text)  # :class:`title <target>`
    if m:
        text = m.group(1)
    return text.lstrip("~!").removesuffix("()")


def resolve(target: str, module: str, qualname: str = ""):
    """Resolve a role target seen in the docstring of ``module.qualname``; returns ``(dotted name, obj)``."""
    scopes = []
    parts = qualname.split(".") if qualname else []
    for i in range(len(parts), 0, -1):  # enclosing classes, innermost first
        scopes.append(module + "." + ".".join(parts[:i]))
    mod_parts = module.split(".")
    for i in range(len(mod_parts), 0, -1):  # the module, then its packages
        scopes.append(".".join(mod_parts[:i]))
    for candidate in [target] + [f"{s}.{target}" for s in scopes]:
        obj = _lookup(candidate)
        if obj is not None:
            return candidate, obj
    return None, None


def _private(dotted: str, packages) -> bool:
    parts = dotted.split(".")
    return parts[0] in packages and any(p.startswith("_") and not p.startswith("__") for p in parts)


def check_references(module_docs, packages):
    """Broken references in the docstrings of pdoc's documentation objects, as readable lines."""
    import pdoc.doc

    problems = []

    def visit(doc, module):
        qualname = "" if isinstance(doc, pdoc.doc.Module) else doc.qualname
        scope = qualname if isinstance(doc, pdoc.doc.Class) else qualname.rpartition(".")[0]
        for role in ROLE.findall(doc.docstring or ""):
            target = _target(role)
            name, obj = resolve(target, module, scope)
            where = f"{module}.{qualname}" if qualname else module
            if obj is None:
                problems.append(f"{where}: reference `{role}` resolves to nothing")
            elif _private(name, packages):
                problems.append(f"{where}: reference `{role}` points to the private {name}, not in the reference")
        if isinstance(doc, (pdoc.doc.Module, pdoc.doc.Class)):
            for member in doc.own_members:
                if isinstance(doc, pdoc.doc.Module) and getattr(member, "taken_from", (module,))[0] != module:
                    continue  # re-exported: checked in its own module
                if not member.name.startswith("_") or member.name == "__init__":
                    visit(member, module)

    for mdoc in module_docs:
        visit(mdoc, mdoc.modulename)
    return problems


def build(out: Path, packages) -> int:
    """Render the reference into ``out`` and check it; returns the exit status."""
    import pdoc
    import pdoc.doc
    import pdoc.render

    names = public_modules(packages)
    _patch_pdoc_roles()
    pdoc.render.configure(docformat="numpy", show_source=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module_docs = [pdoc.doc.Module(importlib.import_module(n)) for n in names]
        pdoc.pdoc(*names, output_directory=out)
    pdoc_warnings = [w for w in caught if "pdoc" in (w.filename or "")]
    problems = [f"pdoc warning: {w.message}" for w in pdoc_warnings]
    problems += check_references(module_docs, set(packages))
    if GUIDE.is_dir() and set(packages) <= {"boon_ext", "probconserv_ext", "_physics_constrained"}:
        write_start_page(out, packages, module_docs)
    pages = sorted(out.rglob("*.html"))
    print(f"built {len(pages)} pages for {len(names)} modules in {out}")
    for p in problems:
        print("ERROR", p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} broken reference(s) or pdoc warning(s)", file=sys.stderr)
        return 1
    print("all docstring references resolve")
    return 0


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}
code,pre{{background:#f4f4f4;border-radius:3px}}pre{{padding:.6rem;overflow-x:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}}
</style></head><body>
{body}
</body></html>
"""


def _markdown_page(path: Path, out_dir: Path) -> str:
    """A guide page as HTML for ``out_dir``: links to guide pages go to their rendered ``.html``, other links of
    the repository to the files in the clone."""
    from pdoc.render_helpers import to_html

    def link(m):
        target, anchor = m.group(1), m.group(2) or ""
        if re.fullmatch(r"[a-z_]+\.md", target) and (GUIDE / target).is_file():
            return f"]({target[:-3]}.html{anchor})"
        resolved = (path.parent / target).resolve()
        return f"]({os.path.relpath(resolved, out_dir.resolve()).replace(os.sep, '/')}{anchor})"

    return to_html(re.sub(r"\]\((?!https?:|#)([^)#\s]+)(#[^)\s]*)?\)", link, path.read_text()))


def _inline(text: str) -> str:
    """A docstring's first paragraph as HTML: escaped, its ``code`` spans as code."""
    import html

    return re.sub(r"``?([^`]+)``?", r"<code>\1</code>", html.escape(text))


def write_start_page(out: Path, packages, module_docs) -> None:
    """``index.html``: the guide's index, the public API of each package, every module; ``guide/*.html``."""
    (out / "guide").mkdir(parents=True, exist_ok=True)
    for page in sorted(GUIDE.glob("*.md")):
        body = _markdown_page(page, out / "guide")
        body = '<p><a href="../index.html">API reference</a></p>' + body
        (out / "guide" / f"{page.stem}.html").write_text(PAGE.format(title=page.stem, body=body))
    guide = _markdown_page(GUIDE / "index.md", out)
    guide = re.sub(r'href="([a-z_]+\.html)', r'href="guide/\1', guide)
    parts = [guide, "<h1>Public API</h1>"]
    docs = {d.modulename: d for d in module_docs}
    for name in packages:
        module = importlib.import_module(name)
        public = [n for n in getattr(module, "__all__", []) if not n.startswith("_")]
        if not public:
            continue
        summary = (docs[name].docstring or "").strip().split("\n\n")[0] if name in docs else ""
        rows = []
        for n in public:
            member = docs[name].get(n) if name in docs else None
            first = (member.docstring or "").strip().split("\n\n")[0].replace("\n", " ") if member else ""
            first = re.sub(ROLE, lambda m: _target(m.group(1)), first)
            rows.append(f'<tr><td><a href="{name.replace(".", "/")}.html#{n}"><code>{n}</code></a></td>'
                        f"<td>{_inline(first)}</td></tr>")
        parts.append(f"<h2><a href=\"{name.replace('.', '/')}.html\">{name}</a></h2><p>{_inline(summary)}</p>"
                     f"<table>{''.join(rows)}</table>")
    modules = "".join(f'<li><a href="{n.replace(".", "/")}.html">{n}</a></li>' for n in docs)
    parts.append(f"<h1>All modules</h1><ul>{modules}</ul>")
    (out / "index.html").write_text(PAGE.format(title="physics-constrained-operators", body="\n".join(parts)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=["boon_ext", "probconserv_ext"])
    parser.add_argument("--out", type=Path, default=Path("build/api"), help="output folder (default build/api)")
    args = parser.parse_args(argv)
    return build(args.out, args.packages)


if __name__ == "__main__":
    sys.exit(main())
