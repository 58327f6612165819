"""Internals shared by ``boon_ext`` and ``probconserv_ext``: argument checks and the distribution's version.

Nothing here is public API; both packages re-export what users need.
"""


def distribution_version() -> str:
    """The installed distribution's version; a source tree that was never installed has no metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("physics-constrained-operators")
    except PackageNotFoundError:
        return "0+unknown"
