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


def load_config(path: Union[str, Path]) -> Bunch:
    """Read a YAML (``.yaml``/``.yml``) or JSON (``.json``) config file into a ``Bunch``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. YAML is read with ``yaml.safe_load`` (no arbitrary Python objects).

    Returns
    -------
    zencfg.bunch.Bunch
        The file's top-level mapping, with attribute access at every depth.

    Raises
    ------
    ValueError
        If the suffix is neither YAML nor JSON, or the file does not hold a mapping at the top.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    text = path.read_text()
    if suffix in (".yaml", ".yml"):
        import yaml  # a neuraloperator dependency; imported here so JSON configs do not need it

        data = yaml.safe_load(text)
    elif suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"path must end in .yaml, .yml or .json, got {path.name!r}")
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    return Bunch(data)


def build_model(config):
    """Build a model with ``neuralop.models.get_model`` from a plain nested mapping.

    Parameters
    ----------
    config : mapping or zencfg config
        A ``dict`` (e.g. from ``yaml.safe_load`` or ``json.load``), a ``Bunch``, or a zencfg ``ConfigBase``
        instance, with a ``model`` section holding ``model_arch`` (``"boon_fno"``, ``"boon_tfno"`` or any
        neuralop architecture), ``data_channels`` and the constructor's other arguments, e.g. ``boundary``
        as a list of ``{"type": "dirichlet", ...}`` mappings.

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
