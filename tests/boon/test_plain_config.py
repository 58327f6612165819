"""BOON models from plain YAML/JSON configs (nested dicts), through neuralop's get_model."""

import json

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.models import get_model

from boon_ext import BOONFNO, BOONTFNO, Dirichlet, Neumann, boundary_error, build_model, load_config

YAML = """
model:
  model_arch: {arch}
  data_channels: 1
  out_channels: 1
  n_modes: [{modes}]
  hidden_channels: {width}
  boundary:
    - {{type: dirichlet, left: {left}}}
    - {{type: neumann, faces: [right], domain: [0.0, 2.0]}}
"""


def _write(tmp_path, name, **kw):
    path = tmp_path / name
    path.write_text(YAML.format(**kw))
    return path


def test_a_plain_dict_fails_in_get_model_and_works_in_build_model(tmp_path):
    cfg = yaml.safe_load(_write(tmp_path, "boon.yaml", arch="boon_fno", modes=8, width=16, left=0.5).read_text())
    assert type(cfg) is dict and type(cfg["model"]) is dict
    with pytest.raises(AttributeError, match="'dict' object has no attribute 'model'"):
        get_model(cfg)  # the problem build_model exists for
    model = build_model(cfg)
    assert type(model) is BOONFNO
    assert model.boundary == [Dirichlet(left=0.5), Neumann(faces=["right"], domain=(0.0, 2.0))]
    assert cfg == yaml.safe_load((tmp_path / "boon.yaml").read_text())  # the caller's dict is not changed


@settings(max_examples=8)
@given(arch=st.sampled_from(["boon_fno", "boon_tfno"]), modes=st.sampled_from([4, 8]),
       width=st.integers(4, 12), left=st.floats(-3, 3), seed=st.integers(0, 2**16))
def test_yaml_and_json_files_build_the_same_exact_model(tmp_path_factory, arch, modes, width, left, seed):
    tmp_path = tmp_path_factory.mktemp("cfg")
    # PyYAML (YAML 1.1) reads a float only with a dot: "5e-324" would be a string, "4.9...e-324" is a float.
    path = _write(tmp_path, "cfg.yml", arch=arch, modes=modes, width=width, left=f"{left:.17e}")
    from_yaml = load_config(path)
    json_path = tmp_path / "cfg.json"
    json_path.write_text(json.dumps(yaml.safe_load(path.read_text())))
    from_json = load_config(json_path)
    assert from_yaml == from_json and from_yaml.model.model_arch == arch  # attribute access at any depth
    torch.manual_seed(seed)
    model = build_model(from_json)
    assert type(model) is (BOONFNO if arch == "boon_fno" else BOONTFNO)
    assert model.n_modes == [modes] and model.hidden_channels == width
    assert model.boundary[0] == Dirichlet(left=left)  # the value read back exactly
    g = torch.Generator().manual_seed(seed)
    x, flux = torch.randn(3, 1, 32, generator=g), torch.randn(3, generator=g)
    with torch.no_grad():
        u = model(x, boundary_values={"right": flux})
    # float32 round-off of the values involved (the Neumann stencil divides by h = 2/31)
    assert boundary_error(u, model.boundary, {"right": flux}, relative=True) < 1e-5


def test_bad_configs_are_refused_with_the_missing_part_named(tmp_path):
    with pytest.raises(ValueError, match="'model' section"):
        build_model({"data": {}})
    with pytest.raises(ValueError, match=r"missing \['data_channels'\]"):
        build_model({"model": {"model_arch": "boon_fno"}})
    with pytest.raises(TypeError, match="mapping"):
        build_model(["model"])
    with pytest.raises(TypeError, match="left must be a number.*got str"):  # YAML's 1e-3 is a string
        build_model(yaml.safe_load("model: {model_arch: boon_fno, data_channels: 1, n_modes: [4], "
                                   "out_channels: 1, hidden_channels: 4, boundary: [{type: dirichlet, left: 1e-3}]}"))
    with pytest.raises(TypeError, match=r"config\['model'\] must be a mapping"):
        build_model({"model": "boon_fno"})
    bad = tmp_path / "cfg.toml"
    bad.write_text("x = 1")
    with pytest.raises(ValueError, match=r"\.yaml, \.yml or \.json"):
        load_config(bad)
    top_list = tmp_path / "cfg.json"
    top_list.write_text("[1, 2]")
    with pytest.raises(ValueError, match="mapping at the top level"):
        load_config(top_list)


@settings(max_examples=40, deadline=None)
@given(mantissa=st.integers(-10 ** 6, 10 ** 6), exponent=st.integers(-300, 300), upper=st.booleans(),
       plus=st.booleans())
def test_yaml_exponent_floats_without_a_dot_are_numbers(tmp_path_factory, mantissa, exponent, upper, plus):
    # PyYAML (YAML 1.1) reads 1e-3 as a string; load_config reads it as JSON and YAML 1.2 do.
    text = f"{mantissa}{'E' if upper else 'e'}{'+' if plus and exponent >= 0 else ''}{exponent}"
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(f"value: {text}\nquoted: '{text}'\nlisted: [{text}]\n")
    cfg = load_config(path)
    assert type(cfg["value"]) is float and cfg["value"] == float(text)
    assert cfg["listed"] == [float(text)]
    assert cfg["quoted"] == text  # quoted, it stays a string


def test_yaml_config_with_exponent_values_builds_the_model(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {model_arch: boon_fno, data_channels: 1, n_modes: [4], out_channels: 1, "
                    "hidden_channels: 4, boundary: [{type: dirichlet, left: 1e-3, right: -2E+1}]}\n")
    model = build_model(load_config(path))
    assert model.boundary[0] == Dirichlet(left=1e-3, right=-20.0)
    assert yaml.safe_load("v: 1e-3")["v"] == "1e-3"  # the loader PyYAML exports is left as it was
