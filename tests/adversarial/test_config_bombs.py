"""Adversarial config files against ``boon_ext.load_config``: loaded as written, or refused with a ValueError
naming the file (FileNotFoundError for a missing one); never slow, never anything else.

Classes covered (issue 28), named in each test's docstring:
  [alias]     YAML aliases expanding a small file into a huge config, and recursive anchors;
  [bad-file]  files that are not configs (directories, devices, binary, invalid syntax, deep nesting);
  [bad-type]  keys and values of types a config cannot hold.
"""

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext import build_model, load_config


def _bomb(levels: int, width: int = 10) -> str:
    """The issue's alias bomb: each level a mapping that uses the previous level ``width`` times."""
    lines = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9, q: 10}"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} " + "{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(width)) + "}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9, 30])
def test_alias_bombs_are_refused_by_their_expanded_size(tmp_path, levels):
    """[alias] A 565-byte file of 6 levels took 1.9 s before (x10 per level); any depth is now refused after
    counting at most 100 000 expanded values."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(levels))
    assert path.stat().st_size < 3500
    with pytest.raises(ValueError, match=r"bomb\.yaml expands to more than 100000 values"):
        load_config(path)


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {b: *a}\n", "a: &a {b: [1, {c: *a}]}\n",
                                  "a: &a\n  <<: *a\n"])
def test_recursive_anchors_are_refused(tmp_path, text):
    """[alias] An anchor used inside itself (a config that contains itself) is refused, naming the file."""
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"loop\.yaml (has a recursive alias|is not valid YAML)"):
        load_config(path)


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path):
    """[alias] Small configs that share parts through anchors and merge keys load as written."""
    path = tmp_path / "shared.yaml"
    path.write_text("base: &base {model_arch: boon_fno, data_channels: 1, out_channels: 1, n_modes: [8],\n"
                    "                hidden_channels: 8, boundary: [{type: periodic}]}\n"
                    "model:\n  <<: *base\n  hidden_channels: 16\n")
    cfg = load_config(path)
    assert cfg.model.hidden_channels == 16 and cfg.model.n_modes == [8] and cfg.base.hidden_channels == 8
    assert build_model(cfg).fno_blocks.channel_mlp[0].fcs[0].in_channels == 16


def _bad(kind, folder: Path) -> Path:
    path = folder / ("c.json" if kind.startswith("json") else "c.yaml")
    if kind == "directory":
        path.mkdir()
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "empty":
        path.write_text("")
    elif kind == "top-level list":
        path.write_text("- 1\n- 2\n")
    elif kind == "syntax":
        path.write_text("model: {a: [1, 2\n")
    elif kind == "python tag":
        path.write_text("model: !!python/object/apply:os.system ['true']\n")
    elif kind == "json syntax":
        path.write_text('{"model": [1, 2}')
    elif kind == "json deep":
        path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif kind == "yaml deep":
        path.write_text("a: " + "[" * 200 + "]" * 200 + "\n")
    elif kind == "too large":
        path.write_text("a: 1\n" + "#" * (16 * 2 ** 20 + 10))
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind", ["directory", "device", "fifo", "binary", "empty", "top-level list", "syntax",
                                  "python tag", "json syntax", "json deep", "yaml deep", "too large"])
def test_files_that_are_not_configs(tmp_path, kind):
    """[bad-file] Directories, devices, FIFOs (never opened), binary and empty files, invalid syntax, Python
    tags, nesting deep enough to exhaust recursion, oversized files: a ValueError naming the file."""
    path = _bad(kind, tmp_path)
    with pytest.raises(ValueError, match=r"c\.(yaml|json)"):
        load_config(path)


def test_a_missing_config_is_named(tmp_path):
    """[bad-file] A missing file: FileNotFoundError naming it."""
    with pytest.raises(FileNotFoundError, match=r"no config file at .*nothing\.yaml"):
        load_config(tmp_path / "nothing.yaml")


@pytest.mark.parametrize("text, where", [
    ("1: a\n", "key 1"), ("model: {null: 3}\n", "key None"), ("model: {[1, 2]: 3}\n", "not valid YAML"),
    ("model: {when: 2020-01-01}\n", "model.when must be a plain value"),
    ("model: {raw: !!binary aGk=}\n", "model.raw must be a plain value"),
    ("model: {s: !!set {a, b}}\n", "model.s must be a plain value"),
])
def test_keys_and_values_a_config_cannot_hold(tmp_path, text, where):
    """[bad-type] Non-string keys (which attribute access cannot reach) and values that are not plain (dates,
    bytes, sets): a ValueError naming the file and where."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"c\.yaml.*" + where.replace("[", r"\[").replace("]", r"\]")):
        load_config(path)


_plain = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8))
_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6)
_trees = st.recursive(_plain, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_keys, inner, max_size=4)), max_leaves=25)


def _unbunch(v):
    if hasattr(v, "items"):
        return {k: _unbunch(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unbunch(x) for x in v]
    return v


@settings(max_examples=40, deadline=None)
@given(tree=st.dictionaries(_keys, _trees, min_size=1, max_size=5), fmt=st.sampled_from(["yaml", "json"]))
def test_random_config_trees_round_trip(tmp_path_factory, tree, fmt):
    """[bad-type] Hypothesis over config trees: every plain tree written as YAML or JSON loads back as written."""
    path = tmp_path_factory.mktemp("trees") / f"c.{fmt}"
    path.write_text(yaml.safe_dump(tree) if fmt == "yaml" else json.dumps(tree))
    assert _unbunch(load_config(path)) == tree


@settings(max_examples=60, deadline=None)
@given(data=st.one_of(st.binary(max_size=300),
                      st.text(alphabet="ab:{}[]-&*!<,\n #'\"", max_size=200).map(str.encode)),
       fmt=st.sampled_from(["yaml", "json"]))
def test_fuzzed_config_bytes_load_or_are_refused(tmp_path_factory, data, fmt):
    """[alias] Hypothesis over file bytes (random bytes, and text made of YAML's structural characters: anchors,
    aliases, merge keys, flow collections): a config loads, or a ValueError names the file."""
    path = tmp_path_factory.mktemp("fuzz") / f"c.{fmt}"
    path.write_bytes(data)
    try:
        cfg = load_config(path)
    except ValueError as e:
        assert f"c.{fmt}" in str(e)
    else:
        assert all(isinstance(k, str) for k in cfg)
