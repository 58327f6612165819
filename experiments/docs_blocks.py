"""Generated blocks of the documentation pages: the tables a reproduction script writes between two HTML comments.

A page holds, for each kind of block a script writes, a begin line and an end line (HTML comments, invisible once
rendered); the script replaces what lies between them and leaves the rest of the page as it is. One implementation
for every script (``reproduce_boon --docs``, ``reproduce_probconserv --docs``), each with its own marker text, so
that a page can hold blocks of several scripts without one script touching the other's.
"""

from __future__ import annotations

from pathlib import Path


def markers(script, kind=None, source="the finished runs"):
    """The ``(begin, end)`` lines of a block written by ``<script> --docs`` (``kind`` names one of several blocks).

    E.g. ``markers("reproduce_probconserv", "diagnostics", "results_paper.json")`` gives
    ``"<!-- reproduce_probconserv --docs diagnostics: begin (generated from results_paper.json; do not edit by
    hand) -->"`` and ``"<!-- reproduce_probconserv --docs diagnostics: end -->"``.
    """
    name = f"{script} --docs" + (f" {kind}" if kind else "")
    return (f"<!-- {name}: begin (generated from {source}; do not edit by hand) -->", f"<!-- {name}: end -->")


def read_docs_blocks(page, blocks, option="docs"):
    """``(text, kinds)``: the Markdown file ``page`` and the kinds of generated block it holds.

    Parameters
    ----------
    page : str or path-like
        The Markdown file.
    blocks : dict
        ``{kind: (begin line, end line)}``: the blocks the calling script writes (see :func:`markers`).
    option : str
        The name the error messages start with (the script's option or argument, e.g. ``"--docs"``).

    Returns
    -------
    tuple
        The page's text and the kinds of ``blocks`` it holds, in the order of ``blocks``.

    Raises
    ------
    ValueError
        Naming ``option`` and the page: an unreadable file, a file with none of the blocks, a block whose begin
        and end lines are not there once each, begin first, or blocks that overlap.
    """
    try:
        text = Path(page).read_text()
    except OSError as err:
        raise ValueError(f"{option}: cannot read {page}: {err!r}") from err
    kinds, spans = [], []
    for kind, (begin, end) in blocks.items():
        if begin not in text and end not in text:
            continue
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise ValueError(f"{option}: {page} must hold the line {begin!r} once, followed by {end!r} once; the "
                             f"generated {kind} replaces what lies between them")
        kinds.append(kind)
        spans.append((text.index(begin), text.index(end)))
    if not kinds:
        raise ValueError(f"{option}: {page} holds no generated block; expected the lines "
                         + " or ".join(f"{b!r} ... {e!r}" for b, e in blocks.values()))
    spans.sort()
    if any(spans[i][1] > spans[i + 1][0] for i in range(len(spans) - 1)):
        raise ValueError(f"{option}: the generated blocks of {page} overlap; expected one after the other")
    return text, kinds


def check_docs_blocks(page, blocks, option="docs"):
    """The kinds of generated block (keys of ``blocks``) that ``page`` holds; see :func:`read_docs_blocks`.

    Call it before a long run, so that a bad page fails before the training and not after.
    """
    return read_docs_blocks(page, blocks, option)[1]


def write_docs_blocks(page, blocks, bodies, option="docs"):
    """Replace each generated block of ``page`` (see :func:`read_docs_blocks`) with ``bodies[kind]``.

    The text outside the blocks is kept byte for byte; a block becomes its begin line, an empty line,
    ``bodies[kind]``, a line break and its end line. Returns the kinds written.

    Raises
    ------
    ValueError
        For a page :func:`read_docs_blocks` refuses, or a block of the page that ``bodies`` has no text for.
    """
    text, kinds = read_docs_blocks(page, blocks, option)
    missing = [k for k in kinds if k not in bodies]
    if missing:
        raise ValueError(f"{option}: {page} holds the blocks {missing}, which this run does not generate "
                         f"(it generates {sorted(bodies)})")
    for kind in kinds:
        begin, end = blocks[kind]
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        text = head + begin + "\n\n" + bodies[kind] + "\n" + end + tail
    Path(page).write_text(text)
    return kinds
