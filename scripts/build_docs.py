"""Build the HTML API reference from the docstrings with pdoc, and fail on broken references.

    python scripts/build_docs.py                       # boon_ext and probconserv_ext -> build/api/
    python scripts/build_docs.py --out DIR pkg [pkg]   # other packages or folder

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
import pkgutil
import re
import sys
import warnings
from pathlib import Path

ROLE = re.compile(r":(?:py:)?(?:mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")


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
    pdoc.render.configure(docformat="numpy", show_source=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module_docs = [pdoc.doc.Module(importlib.import_module(n)) for n in names]
        pdoc.pdoc(*names, output_directory=out)
    pdoc_warnings = [w for w in caught if "pdoc" in (w.filename or "")]
    problems = [f"pdoc warning: {w.message}" for w in pdoc_warnings]
    problems += check_references(module_docs, set(packages))
    pages = sorted(out.rglob("*.html"))
    print(f"built {len(pages)} pages for {len(names)} modules in {out}")
    for p in problems:
        print("ERROR", p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} broken reference(s) or pdoc warning(s)", file=sys.stderr)
        return 1
    print("all docstring references resolve")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=["boon_ext", "probconserv_ext"])
    parser.add_argument("--out", type=Path, default=Path("build/api"), help="output folder (default build/api)")
    args = parser.parse_args(argv)
    return build(args.out, args.packages)


if __name__ == "__main__":
    sys.exit(main())
