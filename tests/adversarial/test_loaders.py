"""Adversarial checkpoint files against every loader: refused with UnsafeCheckpointError (naming the file and
the field) before anything the file chose is called or allocated, or loaded correctly; never anything else.

Classes covered (issue 28), named in each test's docstring:
  [call]      the unpickler calls a global the file names (allocation chosen by a file);
  [size]      sizes from the metadata allocate before the state dict is checked;
  [bad-file]  files that are not checkpoints crash with unclear errors;
  [bad-type]  checkpoint contents of the wrong type crash with messages about Python internals.
"""

import collections
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from neuralop.layers.spectral_convolution import SpectralConv

from adversarial_files import KW, Call, genuine, raw, rewrite
from boon_ext import (BOONFNO, BOONWrapper, Dirichlet, UnsafeCheckpointError, load_checkpoint_file, load_ddp_checkpoint,
                      load_state_dict_file)

BOUNDARY = Dirichlet(left=0.0)


def _instance(folder):
    model = BOONFNO(**KW, boundary=BOUNDARY)
    model.load_checkpoint(folder, "m")
    return model


def _embedded(folder):
    meta = Path(folder) / "m_metadata.pkl"
    if meta.exists():
        meta.unlink()
    return load_ddp_checkpoint(folder, "m")


# Every path that reads the state dict file, and every path that reads the metadata file.
STATE_READERS = {
    "load_checkpoint_file": lambda f: load_checkpoint_file(Path(f) / "m_state_dict.pt"),
    "from_checkpoint": lambda f: BOONFNO.from_checkpoint(f, "m"),
    "from_checkpoint(model_kwargs)": lambda f: BOONFNO.from_checkpoint(f, "m", boundary=BOUNDARY,
                                                                      model_kwargs=dict(KW)),
    "load_ddp_checkpoint": lambda f: load_ddp_checkpoint(f, "m"),
    "load_ddp_checkpoint(embedded)": _embedded,
    "instance load_checkpoint": _instance,
    "load_state_dict_file": lambda f: load_state_dict_file(Path(f) / "m_state_dict.pt"),
    "BOONWrapper.from_checkpoint": lambda f: BOONWrapper.from_checkpoint(f, "m", boundary=BOUNDARY),
    "BOONWrapper load_checkpoint": lambda f: BOONWrapper(BOONFNO(**KW), BOUNDARY).load_checkpoint(f, "m"),
}
META_READERS = {
    "load_checkpoint_file": lambda f: load_checkpoint_file(Path(f) / "m_metadata.pkl"),
    "from_checkpoint": lambda f: BOONFNO.from_checkpoint(f, "m"),
    "load_ddp_checkpoint": lambda f: load_ddp_checkpoint(f, "m"),
    "BOONWrapper.from_checkpoint": lambda f: BOONWrapper.from_checkpoint(f, "m", boundary=BOUNDARY),
}


def _refused(load, folder, match):
    with pytest.raises(UnsafeCheckpointError, match=match) as info:
        load(folder)
    return str(info.value)


@pytest.fixture
def no_spectral_conv(monkeypatch):
    """Building a SpectralConv larger than the genuine checkpoint's off the meta device fails the test (instead of
    allocating what a crafted file asked for)."""
    real = SpectralConv.__init__

    def guarded(self, *args, **kwargs):
        sizes = [a for a in args[:2] if isinstance(a, int)] + list(args[2] if len(args) > 2 else ())
        if torch.get_default_device().type != "meta" and max(sizes, default=0) > 4:
            raise AssertionError(f"SpectralConv{args} built off the meta device while a crafted file was read")
        real(self, *args, **kwargs)

    monkeypatch.setattr(SpectralConv, "__init__", guarded)


# ------------------------------------------------------------------ [call]
CALLS = {
    "SpectralConv(256, 256, (2**17,))": Call(SpectralConv, 256, 256, (2 ** 17,)),
    "bytearray(2**35)": Call(bytearray, 2 ** 35),
    "torch.FloatTensor(2**35)": Call(torch.FloatTensor, 2 ** 35),
    "torch.Size((2**35,))": Call(torch.Size, (2 ** 35,)),
    "OrderedDict(items)": Call(collections.OrderedDict, [("a", 1)]),
    "gelu(1.0)": Call(F.gelu, 1.0),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("reader", list(STATE_READERS))
def test_a_state_dict_cannot_call_any_global(tmp_path, no_spectral_conv, call, reader):
    """[call] A state dict whose pickle calls a global (an allow-listed class among them) is refused on every
    loader before the call, naming the global."""
    genuine(tmp_path)
    state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
    if reader == "load_ddp_checkpoint(embedded)":
        state["_metadata"]["n_layers"] = CALLS[call]
    else:
        state["payload"] = CALLS[call]
    torch.save(state, tmp_path / "m_state_dict.pt")
    message = _refused(STATE_READERS[reader], tmp_path, r"m_state_dict\.pt")
    assert "GLOBAL" in message or "calls" in message


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("reader", list(META_READERS))
def test_a_metadata_file_cannot_call_any_global(tmp_path, no_spectral_conv, call, reader):
    """[call] The same calls placed in the metadata file, refused on every loader that reads it."""
    genuine(tmp_path)
    meta = load_checkpoint_file(tmp_path / "m_metadata.pkl")
    meta["hidden_channels"] = CALLS[call]
    torch.save(meta, tmp_path / "m_metadata.pkl")
    message = _refused(META_READERS[reader], tmp_path, r"m_metadata\.pkl")
    assert "GLOBAL" in message or "calls" in message


def test_references_stay_inert_and_resolve_after_reading(tmp_path):
    """[call] Referencing an allowed global (neuralop's metadata does) is not calling it: the genuine file loads
    with the real objects in place."""
    genuine(tmp_path)
    meta = load_checkpoint_file(tmp_path / "m_metadata.pkl")
    assert meta["conv_module"] is SpectralConv and meta["non_linearity"] is F.gelu


@pytest.mark.parametrize("reader", ["from_checkpoint", "instance load_checkpoint", "load_checkpoint_file"])
@pytest.mark.parametrize("view", ["broadcast", "past the end"])
def test_tensor_views_cannot_exceed_their_storage(tmp_path, reader, view):
    """[call] A tensor rebuilt as a view larger than its storage record (a 4-byte storage seen as 2**35 elements
    through stride 0, or a view running past the end) is refused while the file is read."""
    genuine(tmp_path)
    state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
    if view == "broadcast":
        state["payload"] = torch.zeros(1).expand(2 ** 35)
    else:
        state["payload"] = torch.zeros(8)[2:]
    torch.save(state, tmp_path / "m_state_dict.pt")
    if view == "past the end":  # shrink the record behind the view: 8 floats become 2
        with zipfile.ZipFile(tmp_path / "m_state_dict.pt") as z:
            names = [n for n in z.namelist() if "/data/" in n]
        last = max(names, key=lambda n: int(n.rsplit("/", 1)[1]))
        rewrite(tmp_path / "m_state_dict.pt", lambda n, d: d[:8] if n == last else d)
    _refused(STATE_READERS[reader], tmp_path, r"does not fit|more than|claims")


@pytest.mark.parametrize("versions", [{"": 5}, [1, 2], {"": {"version": torch.zeros(2)}}, {"": dict.fromkeys("abcdefghij", 1)}])
def test_module_versions_of_the_wrong_type_are_refused(tmp_path, versions):
    """[bad-type] The state dict's ``_metadata`` attribute (module versions, which load_state_dict hands to every
    module) must hold {name: {"version": int}}: anything else is refused while the file is read."""
    genuine(tmp_path)
    state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
    assert "version" in state._metadata[""]  # the genuine attribute is kept
    state._metadata = versions
    torch.save(state, tmp_path / "m_state_dict.pt")
    for reader in ("from_checkpoint", "instance load_checkpoint"):
        _refused(STATE_READERS[reader], tmp_path, r"m_state_dict\.pt.*_metadata attribute")


def test_a_storage_record_shorter_than_claimed_is_refused(tmp_path):
    """[call] A storage whose stated size differs from its record's is refused (torch would read past it)."""
    genuine(tmp_path)
    rewrite(tmp_path / "m_state_dict.pt", lambda n, d: d[:4] if n.endswith("/data/0") else d)
    for reader in ("load_checkpoint_file", "from_checkpoint"):
        _refused(STATE_READERS[reader], tmp_path, r"claims \d+ bytes, its record holds 4")


def test_compressed_and_foreign_records_are_refused(tmp_path):
    """[call] A deflated record (a zip bomb: its stated size is what the reader allocates) and a record torch.save
    never writes (a TorchScript archive's constants.pkl, which torch.load hands to torch.jit.load)."""
    genuine(tmp_path)
    path = tmp_path / "m_state_dict.pt"
    with zipfile.ZipFile(path) as z:
        records = [(n, z.read(n)) for n in z.namelist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in records:
            z.writestr(n, d)
    _refused(STATE_READERS["from_checkpoint"], tmp_path, "compressed")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, d in records:
            z.writestr(n, d)
        z.writestr("m_state_dict/constants.pkl", b"")
    _refused(STATE_READERS["load_checkpoint_file"], tmp_path, "constants.pkl")


def test_legacy_format_is_refused_before_its_storages_are_allocated(tmp_path):
    """[call] torch's legacy (non-zip) reader allocates each storage at the size the file states before reading
    it: such files are refused, whatever they hold."""
    genuine(tmp_path)
    state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
    torch.save(state, tmp_path / "m_state_dict.pt", _use_new_zipfile_serialization=False)
    for reader in ("load_checkpoint_file", "from_checkpoint", "instance load_checkpoint"):
        _refused(STATE_READERS[reader], tmp_path, "zip format")


@pytest.mark.parametrize("depth", [6, 12])
def test_shared_parts_cannot_expand_the_metadata(tmp_path, depth):
    """[call] A metadata list that repeats one list ten times per level (memo references: a few hundred bytes)
    is refused by its expanded size instead of being walked 10**depth times."""
    genuine(tmp_path)
    meta = load_checkpoint_file(tmp_path / "m_metadata.pkl")
    bomb = [1]
    for _ in range(depth):
        bomb = [bomb] * 10
    meta["decomposition_kwargs"] = {"x": bomb}
    torch.save(meta, tmp_path / "m_metadata.pkl")
    assert (tmp_path / "m_metadata.pkl").stat().st_size < 4000
    _refused(META_READERS["from_checkpoint"], tmp_path, r"m_metadata\.pkl: metadata holds more than 10000 values")


def test_recursive_metadata_is_refused(tmp_path):
    """[bad-type] A metadata value that contains itself."""
    genuine(tmp_path)
    meta = load_checkpoint_file(tmp_path / "m_metadata.pkl")
    loop = []
    loop.append(loop)
    meta["decomposition_kwargs"] = {"x": loop}
    torch.save(meta, tmp_path / "m_metadata.pkl")
    _refused(META_READERS["from_checkpoint"], tmp_path, r"\['decomposition_kwargs'\]\['x'\]\[0\] contains itself")


# ------------------------------------------------------------------ [size]
def _with_metadata(folder, **changes):
    meta = load_checkpoint_file(Path(folder) / "m_metadata.pkl")
    meta.update(changes)
    torch.save(meta, Path(folder) / "m_metadata.pkl")


@pytest.mark.parametrize("reader", ["from_checkpoint", "load_ddp_checkpoint", "load_ddp_checkpoint(embedded)"])
def test_metadata_sizes_beyond_the_state_dict_are_refused_before_building(tmp_path, no_spectral_conv, reader):
    """[size] The issue's 2 KB metadata (hidden_channels=256, n_modes=(2**17,)) is refused by its sizes, naming the
    field, before any model is built (also from the state dict's embedded _metadata)."""
    genuine(tmp_path)
    if reader.endswith("(embedded)"):
        state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
        state["_metadata"].update(hidden_channels=256, n_modes=(2 ** 17,))
        torch.save(state, tmp_path / "m_state_dict.pt")
    else:
        _with_metadata(tmp_path, hidden_channels=256, n_modes=(2 ** 17,))
    _refused(STATE_READERS[reader], tmp_path, r"field \['n_modes'\]\[0\] is 131072")


def test_a_layer_count_beyond_the_state_dict_is_refused_before_building(tmp_path, no_spectral_conv):
    """[size] n_layers costs time per layer even on the meta device: more layers than state dict entries is
    refused by the count."""
    genuine(tmp_path)
    _with_metadata(tmp_path, n_layers=3000)
    _refused(STATE_READERS["from_checkpoint"], tmp_path, r"m_metadata\.pkl: metadata field 'n_layers' is 3000, more "
                                                         r"than the \d+ entries")


@pytest.mark.parametrize("change", [dict(hidden_channels=2048), dict(n_modes=(4000,)), dict(n_layers=3),
                                    dict(hidden_channels=256, n_modes=(1024,)), dict(in_channels=3)])
def test_sizes_within_bounds_are_compared_on_the_meta_device(tmp_path, no_spectral_conv, change):
    """[size] Sizes small enough to pass the bound are built on the meta device only, compared with the state
    dict, and refused naming the first entry that differs."""
    genuine(tmp_path)
    _with_metadata(tmp_path, **change)
    _refused(STATE_READERS["from_checkpoint"], tmp_path, r"m_state_dict\.pt: state dict entry '.*' has shape .*, "
                                                         r"the model m_metadata\.pkl describes needs|"
                                                         r"m_state_dict\.pt does not hold the weights of the model "
                                                         r"m_metadata\.pkl describes|"
                                                         r"m_metadata\.pkl: the constructor arguments it holds .*"
                                                         r"n_modes must fit the Fourier weights")


@settings(max_examples=15, deadline=None)
@given(hidden=st.integers(1, 2 ** 20), modes=st.integers(1, 2 ** 20), layers=st.integers(1, 6),
       ratio=st.integers(1, 2 ** 12))
def test_random_metadata_sizes_load_only_when_they_match(tmp_path_factory, hidden, modes, layers, ratio):
    """[size] Hypothesis over the sizes a metadata file states: the model loads exactly when they are the sizes its
    weights have, and is refused with UnsafeCheckpointError otherwise; nothing is built off the meta device
    before that."""
    folder = tmp_path_factory.mktemp("sizes")
    model = genuine(folder)
    _with_metadata(folder, hidden_channels=hidden, n_modes=(modes,), n_layers=layers, lifting_channel_ratio=ratio)
    real_init = SpectralConv.__init__
    built = []

    def recording(self, *args, **kwargs):
        built.append(torch.get_default_device().type)
        real_init(self, *args, **kwargs)

    SpectralConv.__init__ = recording
    try:
        matches = (hidden, modes, layers, ratio) == (4, 4, 1, 2)
        if matches:
            loaded = BOONFNO.from_checkpoint(folder, "m")
            x = torch.randn(2, 1, 16)
            assert torch.equal(loaded(x), model(x))
        else:
            with pytest.raises(UnsafeCheckpointError, match=r"m_(metadata\.pkl|state_dict\.pt)"):
                BOONFNO.from_checkpoint(folder, "m")
            assert set(built) <= {"meta"}
    finally:
        SpectralConv.__init__ = real_init


# ------------------------------------------------------------------ [bad-file]
def _write(kind, path):
    path = Path(path)
    if kind == "text":
        path.write_text("hello, this is not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink to /etc/passwd":
        path.symlink_to("/etc/passwd")
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "plain pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "truncated":
        data = path.with_suffix(".orig").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zip of text":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("notes.txt", "hello")
    else:
        raise AssertionError(kind)


BAD_FILES = ["text", "empty", "directory", "symlink to /etc/passwd", "symlink to /dev/zero", "fifo", "plain pickle",
             "truncated", "zip of text"]


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("reader", list(STATE_READERS))
def test_a_state_dict_path_that_is_not_a_checkpoint(tmp_path, kind, reader):
    """[bad-file] Text, empty, truncated files, a directory, symbolic links to system files and devices, a FIFO,
    a plain pickle, a zip of something else: refused naming the file, on every loader (never IndexError,
    EOFError, OSError, and never a read that blocks or runs forever)."""
    genuine(tmp_path)
    path = tmp_path / "m_state_dict.pt"
    path.rename(path.with_suffix(".orig"))
    _write(kind, path)
    if not (kind in ("directory", "fifo") and reader != "load_checkpoint_file"):
        _refused(STATE_READERS[reader], tmp_path, r"m_state_dict\.pt")
    else:  # Path.exists() is true for both: the loaders reach the reader, which refuses
        _refused(STATE_READERS[reader], tmp_path, r"m_state_dict\.pt: it is|m_state_dict\.pt: it is|not a regular|"
                                                  r"directory")


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("reader", list(META_READERS))
def test_a_metadata_path_that_is_not_a_checkpoint(tmp_path, kind, reader):
    """[bad-file] The same files given as the metadata file."""
    genuine(tmp_path)
    path = tmp_path / "m_metadata.pkl"
    path.rename(path.with_suffix(".orig"))
    _write(kind, path)
    _refused(META_READERS[reader], tmp_path, r"m_metadata\.pkl")


def test_a_missing_file_is_named(tmp_path):
    """[bad-file] A missing file raises FileNotFoundError naming it, on every loader."""
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at .*nothing\.pt"):
        load_checkpoint_file(tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at .*dangling\.pt"):
        (tmp_path / "dangling.pt").symlink_to(tmp_path / "nowhere")
        load_checkpoint_file(tmp_path / "dangling.pt")
    for reader in ("from_checkpoint", "load_ddp_checkpoint", "instance load_checkpoint"):
        with pytest.raises(FileNotFoundError, match=r"no state dict at .*m_state_dict\.pt"):
            STATE_READERS[reader](tmp_path)


def _mutants():
    return st.one_of(
        st.tuples(st.just("bytes"), st.binary(max_size=600)),
        st.tuples(st.just("truncate"), st.integers(0, 10 ** 6)),
        st.tuples(st.just("flip"), st.lists(st.integers(0, 10 ** 7), min_size=1, max_size=6)),
    )


def _mutate(data, mutant):
    kind, arg = mutant
    if kind == "bytes":
        return arg
    if kind == "truncate":
        return data[: arg % (len(data) + 1)]
    out = bytearray(data)
    for bit in arg:
        bit %= 8 * len(out)
        out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


_GENUINE = {}


def _genuine_bytes(tmp_path_factory):
    if not _GENUINE:
        folder = tmp_path_factory.mktemp("genuine")
        genuine(folder)
        _GENUINE["state"] = (folder / "m_state_dict.pt").read_bytes()
        _GENUINE["meta"] = (folder / "m_metadata.pkl").read_bytes()
    return _GENUINE


@settings(max_examples=40, deadline=None)
@given(target=st.sampled_from(["state", "meta"]), mutant=_mutants())
def test_fuzzed_files_load_or_are_refused(tmp_path_factory, target, mutant):
    """[bad-file] Hypothesis over file bytes: random byte strings, truncations and bit flips of a genuine
    checkpoint. Every loader either loads or raises UnsafeCheckpointError naming the file (the only other
    documented error here is from_checkpoint's ValueError for a file that lost its conditions, which names the
    file too)."""
    files = _genuine_bytes(tmp_path_factory)
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "m_state_dict.pt").write_bytes(files["state"])
    (folder / "m_metadata.pkl").write_bytes(files["meta"])
    name = "m_state_dict.pt" if target == "state" else "m_metadata.pkl"
    (folder / name).write_bytes(_mutate(files[target], mutant))
    readers = STATE_READERS if target == "state" else META_READERS
    for label, load in readers.items():
        if label == "load_ddp_checkpoint(embedded)":
            continue  # deletes the metadata file: run last, below
        try:
            load(folder)
        except UnsafeCheckpointError as e:
            assert name in str(e)
        except ValueError as e:
            assert type(e) is ValueError and "pass boundary=" in str(e) and "m_state_dict.pt" in str(e)
    if target == "state":
        try:
            _embedded(folder)
        except ValueError as e:  # UnsafeCheckpointError, or no conditions / no embedded metadata: names the file
            assert name in str(e)


@settings(max_examples=60, deadline=None)
@given(target=st.sampled_from(["state", "meta"]),
       edits=st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 10 ** 6),
                                st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzzed_pickles_inside_valid_archives_load_or_are_refused(tmp_path_factory, target, edits):
    """[call] Hypothesis over the pickle itself (bit flips, inserted and deleted bytes in data.pkl, the archive
    around it intact): the interpreter either returns plain content or refuses with UnsafeCheckpointError, and
    every loader either loads or refuses naming the file."""
    files = _genuine_bytes(tmp_path_factory)
    folder = tmp_path_factory.mktemp("pickle")
    (folder / "m_state_dict.pt").write_bytes(files["state"])
    (folder / "m_metadata.pkl").write_bytes(files["meta"])
    name = "m_state_dict.pt" if target == "state" else "m_metadata.pkl"

    def edit(record, data):
        if not record.endswith("/data.pkl"):
            return data
        out = bytearray(data)
        for kind, at, value in edits:
            at %= len(out) + 1
            if kind == "flip" and at < len(out):
                out[at] ^= 1 << (value % 8)
            elif kind == "insert":
                out[at:at] = bytes([value])
            elif kind == "delete" and at < len(out):
                del out[at]
        return bytes(out)

    rewrite(folder / name, edit)
    readers = STATE_READERS if target == "state" else META_READERS
    for label in ("load_checkpoint_file", "from_checkpoint"):
        try:
            readers[label](folder)
        except UnsafeCheckpointError as e:
            assert name in str(e)
        except ValueError as e:
            assert type(e) is ValueError and "pass boundary=" in str(e) and "m_state_dict.pt" in str(e)


# ------------------------------------------------------------------ [bad-type]
STATE_CONTENTS = {
    "a list": lambda s: [torch.zeros(2)],
    "a tensor": lambda s: torch.zeros(2),
    "an int key": lambda s: {**s, 5: torch.zeros(1)},
    "a str value": lambda s: {**s, "lifting.fcs.0.weight": "weights"},
    "an int value": lambda s: {**s, "lifting.fcs.0.bias": 3},
    "an int64 weight": lambda s: {**s, "lifting.fcs.0.bias": s["lifting.fcs.0.bias"].long()},
    "a real spectral weight": lambda s: {**s, "fno_blocks.convs.0.weight.tensor":
                                         s["fno_blocks.convs.0.weight.tensor"].real.contiguous()},
    "mixed precision": lambda s: {**s, "lifting.fcs.0.bias": s["lifting.fcs.0.bias"].double()},
    "a wrong shape": lambda s: {**s, "lifting.fcs.0.bias": torch.zeros(3)},
    "a missing entry": lambda s: {k: v for k, v in s.items() if k != "lifting.fcs.0.bias"},
    "a sparse tensor": lambda s: {**s, "lifting.fcs.0.bias": s["lifting.fcs.0.bias"].to_sparse()},
}
STATE_MESSAGES = {
    "a list": "holds a list, expected a state dict", "a tensor": "holds a Tensor, expected a state dict",
    "an int key": "keys must be strings, got the key 5", "a str value": r"entry 'lifting.fcs.0.weight' must be a "
    "tensor, got a str", "an int value": "entry 'lifting.fcs.0.bias' must be a tensor, got a int",
    "an int64 weight": "entry 'lifting.fcs.0.bias' is torch.int64, expected float32 or float64",
    "a real spectral weight": "entry 'fno_blocks.convs.0.weight.tensor' is torch.float32, expected complex64 or "
    "complex128", "mixed precision": "one precision per file", "a wrong shape": "'lifting.fcs.0.bias' has shape "
    r"\(3,\)", "a missing entry": r"missing entries \['lifting.fcs.0.bias'\]", "a sparse tensor": "GLOBAL|dense",
}


@pytest.mark.parametrize("content", list(STATE_CONTENTS))
@pytest.mark.parametrize("reader", ["from_checkpoint", "from_checkpoint(model_kwargs)", "load_ddp_checkpoint",
                                    "instance load_checkpoint"])
def test_state_dict_contents_of_the_wrong_type(tmp_path, content, reader):
    """[bad-type] State dicts that are lists, hold non-tensors, wrong dtypes, shapes or layouts: a message naming
    the file and the entry, on every loader."""
    genuine(tmp_path)
    state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
    torch.save(STATE_CONTENTS[content](state), tmp_path / "m_state_dict.pt")
    _refused(STATE_READERS[reader], tmp_path, r"m_state_dict\.pt.*" + STATE_MESSAGES[content])


META_CONTENTS = {
    "a list": ([1, 2], r"metadata must be a dict of constructor arguments, got a list"),
    "args: 5": ({"args": 5}, r"metadata field 'args' must be a list or tuple of positional arguments, got 5"),
    "kernel_correction: 'false'": ({"kernel_correction": "false"},
                                   r"metadata field 'kernel_correction' must be a bool, got 'false'"),
    "hidden_values: 1": ({"hidden_values": 1}, r"metadata field 'hidden_values' must be a bool, got 1"),
    "lift_width: '3'": ({"lift_width": "3"}, r"metadata field 'lift_width' must be an int or None, got '3'"),
    "time_dim: 1.0": ({"time_dim": 1.0}, r"metadata field 'time_dim' must be an int or None, got 1.0"),
    "boundary: 5": ({"boundary": 5}, r"metadata field 'boundary' must be a list, a dict or None, got 5"),
    "an int key": ({7: 1}, r"must have string keys, got the key 7"),
    "a tensor value": ({"rank": torch.zeros(3)}, r"field \['rank'\] must be a plain value .* got a Tensor"),
    "a set value": ({"rank": {1, 2}}, r"GLOBAL (__builtin__|builtins)\.set"),
    "a bytes value": ({"_name": b"fno"}, r"GLOBAL _codecs.encode"),
    "hidden_channels: '4'": ({"hidden_channels": "4"}, r"do not build a BOONFNO"),
    "n_modes: 4.5": ({"n_modes": (4.5,)}, r"do not build a BOONFNO"),
    "an unknown argument": ({"colour": "red"}, r"do not build a BOONFNO: TypeError"),
}


@pytest.mark.parametrize("content", list(META_CONTENTS))
@pytest.mark.parametrize("where", ["file", "embedded"])
def test_metadata_contents_of_the_wrong_type(tmp_path, content, where):
    """[bad-type] Metadata that is a list, has args: 5, a string for a bool, a tensor, a set or bytes, or
    arguments the constructor refuses: a message naming the file and the field."""
    genuine(tmp_path)
    change, message = META_CONTENTS[content]
    if where == "file":
        meta = load_checkpoint_file(tmp_path / "m_metadata.pkl")
        meta = change if isinstance(change, list) else {**meta, **change}
        torch.save(meta, tmp_path / "m_metadata.pkl")
        _refused(META_READERS["from_checkpoint"], tmp_path, r"m_metadata\.pkl.*" + message)
    else:
        state = load_checkpoint_file(tmp_path / "m_state_dict.pt")
        state["_metadata"] = change if isinstance(change, list) else {**state["_metadata"], **change}
        torch.save(state, tmp_path / "m_state_dict.pt")
        _refused(_embedded, tmp_path, r"m_state_dict\.pt.*" + message.replace("metadata", "the state dict's "
                                                                                 "'_metadata' entry", 1))
        # the instance loader reads the same entry (for its accuracy warning): checked the same way
        genuine(tmp_path)
        torch.save(state, tmp_path / "m_state_dict.pt")
        if "build" not in message:  # constructor arguments are not used by the instance loader
            _refused(_instance, tmp_path, r"m_state_dict\.pt.*" + message.replace("metadata", "the state dict's "
                                                                                    "'_metadata' entry", 1))


def test_genuine_checkpoints_still_round_trip(tmp_path):
    """[size] The checks refuse nothing genuine: float32 and float64 checkpoints load with identical outputs on
    every loader."""
    for double in (False, True):
        folder = tmp_path / str(double)
        model = genuine(folder, double=double)
        x = torch.randn(2, 1, 16, dtype=torch.float64 if double else torch.float32)
        for label in ("from_checkpoint", "load_ddp_checkpoint", "load_ddp_checkpoint(embedded)"):
            assert torch.equal(STATE_READERS[label](folder)(x), model(x)), label
