"""Adversarial dataset cache files (``BoundaryProblem.load``, read by every generator given a ``cache_dir``):
loaded as written, or refused with a ValueError naming the file before numpy allocates what a header states.

Classes covered (issue 28), named in each test's docstring:
  [size]      an array header stating more elements than its record holds (numpy allocates it first);
  [bad-file]  damaged, truncated or foreign cache files.
"""

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boon_ext.datasets import BoundaryProblem, heat_neumann


def _cache(tmp_path):
    heat_neumann(3, n_points=8, n_steps=3, seed=0, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    return path


def _rewrite(path, edit, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path) as z:
        records = [(n, z.read(n)) for n in z.namelist()]
    with zipfile.ZipFile(path, "w", compression) as z:
        for n, d in records:
            z.writestr(n, edit(n, d))


def _huge_header(name, data):
    if name != "y.npy":
        return data
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 33,)})
    return buf.getvalue() + b"\0" * 64


def test_an_array_header_larger_than_its_record_is_refused(tmp_path):
    """[size] A y.npy header stating 2**33 float32 values (32 GiB) over 64 bytes: refused before numpy allocates."""
    path = _cache(tmp_path)
    _rewrite(path, _huge_header)
    with pytest.raises(ValueError, match=r"\.npz is not a readable problem cache file: its array y\.npy states "
                                         r"shape \(8589934592,\)"):
        BoundaryProblem.load(path)
    with pytest.raises(ValueError, match=r"\.npz is not a readable problem cache file"):
        heat_neumann(3, n_points=8, n_steps=3, seed=0, cache_dir=tmp_path)  # the generator reads the same file


def test_compressed_and_object_records_are_refused(tmp_path):
    """[size] Deflated records (their stated size is what is allocated) and object arrays."""
    path = _cache(tmp_path)
    _rewrite(path, lambda n, d: d, zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="compressed"):
        BoundaryProblem.load(path)
    path = _cache(tmp_path / "again")
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _rewrite(path, lambda n, d: buf.getvalue() if n == "x.npy" else d)
    with pytest.raises(ValueError, match="Python objects"):
        BoundaryProblem.load(path)


@settings(max_examples=30, deadline=None)
@given(cut=st.floats(0, 1), flips=st.lists(st.integers(0, 10 ** 7), max_size=4))
def test_fuzzed_cache_files_load_or_are_refused(tmp_path_factory, cut, flips):
    """[bad-file] Hypothesis over truncations and bit flips of a genuine cache file: it loads, or a ValueError
    names the file."""
    folder = tmp_path_factory.mktemp("cache")
    path = _cache(folder)
    data = bytearray(path.read_bytes())
    for bit in flips:
        bit %= 8 * len(data)
        data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))] if cut < 1 else data))
    try:
        BoundaryProblem.load(path)
    except ValueError as e:
        assert path.name in str(e)
