"""Models from plain configs: nested dicts read from YAML or JSON.

``neuralop.models.get_model(config)`` reads ``config.model.model_arch``, i.e. it needs attribute access,
which zencfg's ``Bunch`` provides and a plain ``dict`` does not (``AttributeError: 'dict' object has no
attribute 'model'``). :func:`build_model` wraps a plain mapping into a ``Bunch`` and calls ``get_model``, so a
config file works as it is; :func:`load_config` reads such a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Union

from zencfg.bunch import Bunch

__all__ = ["build_model", "load_config"]


# A config file is a few kilobytes: these bounds are far above any real one and far below what hurts.
_MAX_CONFIG_BYTES = 16 * 2 ** 20
_MAX_CONFIG_NODES = 100_000  # values after anchors and merge keys are expanded
_MAX_CONFIG_DEPTH = 64


def _yaml_node_count(root, path: Path) -> None:
    """Refuse a YAML node graph that refers to itself or expands (through aliases) beyond the bounds.

    Aliases are shared nodes in the graph ``yaml.compose`` returns; constructing the data, and copying it into a
    ``Bunch``, expands every one of them. Counting stops at the bound, so a file that doubles its size with
    each level of aliases is refused after ``_MAX_CONFIG_NODES`` steps, not after its expansion.
    """
    import yaml

    count = 0
    stack = [(root, 0, ())]  # node, depth, the ids of its ancestors
    while stack:
        node, depth, ancestors = stack.pop()
        count += 1
        if count > _MAX_CONFIG_NODES:
            raise ValueError(f"{path} expands to more than {_MAX_CONFIG_NODES} values (counting every use of "
                             "each anchor): refusing it")
        if depth > _MAX_CONFIG_DEPTH:
            raise ValueError(f"{path} is nested more than {_MAX_CONFIG_DEPTH} levels deep")
        if isinstance(node, yaml.CollectionNode):
            if id(node) in ancestors:
                raise ValueError(f"{path} has a recursive alias (an anchor used inside itself, line "
                                 f"{node.start_mark.line + 1}): refusing it")
            inner = ancestors + (id(node),)
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            stack.extend((child, depth + 1, inner) for child in children)


# YAML 1.1, which PyYAML implements, reads a float only with a dot: 1e-3 and 2E+5 are strings there, 1.0e-3 a float.
# A plain (unquoted) scalar of this form is read as the number YAML 1.2 and JSON read it as; a quoted one stays a
# string.
_EXPONENT_FLOAT = r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"


def _yaml_loader():
    """``yaml.SafeLoader`` that also reads plain scalars in exponent form without a dot (``1e-3``) as floats."""
    import re

    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # add_implicit_resolver copies the class's resolver table before adding to it: SafeLoader is left as it is.
    _Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(_EXPONENT_FLOAT), list("-+0123456789."))
    return _Loader


def _check_tree(value, path: Path) -> None:
    """Refuse keys other than strings and values other than plain ones, naming where they are."""
    stack = [(value, "")]
    while stack:
        v, where = stack.pop()
        if isinstance(v, Mapping):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise ValueError(f"{path}: keys must be strings, got the key {k!r} ({type(k).__name__}) at "
                                     f"{where or 'the top level'}")
                stack.append((item, f"{where}.{k}" if where else k))
        elif isinstance(v, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(v))
        elif v is not None and not isinstance(v, (bool, int, float, str)):
            raise ValueError(f"{path}: {where} must be a plain value (null, bool, number, string, list or "
                             f"mapping), got a {type(v).__name__}")


def load_config(path: Union[str, Path]) -> Bunch:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config file into a ``Bunch``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. YAML is read with ``yaml.SafeLoader`` (no arbitrary Python objects); anchors and aliases are
        allowed as long as the config they expand to stays small (at most 100 000 values, 64 levels), and an
        anchor used inside itself is refused. A plain scalar in exponent form without a dot (``1e-3``, ``-2E+5``),
        a string to PyYAML's YAML 1.1, is read as the float YAML 1.2 and JSON read; quoted, it stays a string.

    Returns
    -------
    zencfg.bunch.Bunch
        The file's top-level mapping, with attribute access at every depth.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The suffix is neither YAML nor JSON; the path is not a regular file; the file is larger than 16 MiB, not
        UTF-8, not valid YAML/JSON, expands (through aliases) beyond the bounds above or refers to itself, has keys
        other than strings or values other than plain ones, or does not hold a mapping at the top. The message
        names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ValueError(f"path must end in .yaml, .yml or .json, got {path.name!r}")
    if not path.exists():
        raise FileNotFoundError(f"no config file at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file (a directory, device or pipe): not a config file")
    size = path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than a config file may be ({_MAX_CONFIG_BYTES})")
    try:
        text = path.read_bytes()[:_MAX_CONFIG_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if suffix in (".yaml", ".yml"):
        import yaml  # a neuraloperator dependency; imported here so JSON configs do not need it

        try:
            loader = _yaml_loader()
            node = yaml.compose(text, Loader=loader)
            if node is not None:
                _yaml_node_count(node, path)
            data = yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader subclass: plain values only)
        except yaml.YAMLError as e:
            raise ValueError(f"{path} is not valid YAML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        except RecursionError:
            raise ValueError(f"{path} is nested too deeply to be a config") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    _check_tree(data, path)
    return Bunch(data)


def build_model(config):
    """Build a model with ``neuralop.models.get_model`` from a plain nested mapping.

    Parameters
    ----------
    config : mapping or zencfg config
        A ``dict`` (e.g. from ``yaml.safe_load`` or ``json.load``), a ``Bunch``, or a zencfg ``ConfigBase``
        instance, with a ``model`` section holding ``model_arch`` (``"boon_fno"``, ``"boon_tfno"``,
        ``"boon_wrapper"`` with ``inner_arch`` naming the wrapped model, or any neuralop architecture),
        ``data_channels`` and the constructor's other arguments, e.g. ``boundary`` as a list of
        ``{"type": "dirichlet", ...}`` mappings.

    Returns
    -------
    torch.nn.Module
        The model ``get_model`` builds.

    Raises
    ------
    TypeError
        If ``config`` or its ``model`` section is not a mapping.
    ValueError
        If the ``model`` section or its ``model_arch`` / ``data_channels`` keys are missing.

    Examples
    --------
    >>> import yaml, boon_ext
    >>> cfg = yaml.safe_load('''
    ... model:
    ...   model_arch: boon_fno
    ...   data_channels: 1
    ...   out_channels: 1
    ...   n_modes: [16]
    ...   hidden_channels: 32
    ...   boundary: [{type: dirichlet, left: 0.0}]
    ... ''')
    >>> model = boon_ext.build_model(cfg)
    """
    if hasattr(config, "to_dict") and not isinstance(config, Mapping):
        config = config.to_dict()  # a zencfg ConfigBase instance
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping with a 'model' section, got {type(config).__name__}")
    if "model" not in config:
        raise ValueError(f"config must have a 'model' section, got the top-level keys {sorted(config)}")
    model = config["model"]
    if not isinstance(model, Mapping):
        raise TypeError(f"config['model'] must be a mapping, got {type(model).__name__}")
    missing = [k for k in ("model_arch", "data_channels") if k not in model]
    if missing:
        raise ValueError(
            f"config['model'] must hold model_arch and data_channels (neuralop's get_model reads them), got it "
            f"missing {missing}"
        )
    from neuralop.models import get_model  # boon_fno / boon_tfno are registered: importing boon_ext did it

    return get_model(Bunch(config))
