"""Reading ``torch.save`` files without letting the file call anything or choose an allocation.

torch's weights-only unpickler still *calls* every global it allows: ``bytearray(n)``, ``torch.FloatTensor(n)``
and any class added with ``safe_globals`` (e.g. ``SpectralConv(256, 256, (2**17,))``) allocate as much memory
as a file of a few hundred bytes asks for, while it is read. Its legacy (non-zip) format allocates each storage
at the size written in the file before reading a byte of it.

:func:`read_torch_file` reads only torch's zip format, after checking the archive against its own size, and
interprets the pickle with a closed set of operations:

- plain values: ``None``, bools, ints, floats, strings, tuples, lists, dicts and ``OrderedDict`` (built empty);
- tensors, rebuilt by torch from storages whose byte size is the size of their record in the file, only as
  views that fit inside their storage (so the tensors of a file never hold more elements than it does);
- references to a fixed set of globals (the ``references`` argument, e.g. an activation function). They are
  put into the result as they are and are never called while the file is read.

Anything else (calling any other global, building objects, ``BUILD`` on anything but an ``OrderedDict``)
refuses the file with :class:`UnsafeCheckpointError`, before the refused step runs.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterable, Tuple

import torch

__all__ = ["UnsafeCheckpointError", "read_torch_file"]


class UnsafeCheckpointError(ValueError):
    """A checkpoint file was refused: it is not a torch file this package reads, it is damaged, or it references
    or calls a global outside the allow-list (:data:`~boon_ext.CHECKPOINT_GLOBALS`)."""


# The records ``torch.save`` writes next to ``data.pkl`` and the tensors' ``data/<key>`` records.
_AUX_RECORDS = frozenset({"byteorder", "version", ".format_version", ".storage_alignment", ".data/version",
                          ".data/serialization_id"})
_DATA_RECORD = re.compile(r"data/(\w+)")
# The pickle of a state dict of ten thousand tensors takes about 2 MB.
_MAX_PICKLE_BYTES = 256 * 2 ** 20
_MAX_TENSOR_DIMS = 32
_MAX_LONG_BYTES = 32  # LONG1: ints of up to 255 bits


class _Refused(Exception):
    """Raised inside the interpreter; turned into :class:`UnsafeCheckpointError` naming the file."""


class _Callable:
    """One of the few globals the file may call: the interpreter runs ``run`` with checked arguments."""

    def __init__(self, name, run):
        self.name, self.run = name, run

    def __repr__(self):
        return self.name


def _check_int(value, what, minimum=0):
    if type(value) is not int or value < minimum:
        raise _Refused(f"{what} must be an int >= {minimum}, got {value!r}"[:200])
    return value


class _Interpreter:
    """The pickle machine, restricted: see the module docstring. ``torch.load`` subclasses it (to map storage
    type names) and sets ``persistent_load`` (to read storages), as it does for any ``pickle_module``."""

    def __init__(self, file, *, encoding="utf-8", records=None, references=None, **_ignored):
        self._data = file.read()
        if len(self._data) > _MAX_PICKLE_BYTES:
            raise _Refused(f"its data.pkl record is {len(self._data)} bytes, more than {_MAX_PICKLE_BYTES}")
        self._records = records or {}
        self._references = references or {}
        self._storages = {}  # id -> (storage, nbytes)
        self._storage_bytes = 0
        self._tensor_bytes = 0

    # -- globals --------------------------------------------------------------------------------------------
    def find_class(self, module, name):
        key = f"{module}.{name}"
        if key in _CALLABLES:
            return _CALLABLES[key]
        if key in self._references:
            return self._references[key]
        raise _Refused(f"it references GLOBAL {key}, which is not allowed")

    # -- the checked calls ------------------------------------------------------------------------------------
    def _ordered_dict(self, args):
        if args != ():
            raise _Refused("it calls collections.OrderedDict with arguments (only an empty one, filled afterwards, is "
                           "allowed)")
        return OrderedDict()

    def _rebuild_tensor(self, args):
        if not 6 <= len(args) <= 7:
            raise _Refused(f"_rebuild_tensor_v2 takes 6 or 7 arguments, got {len(args)}")
        storage, offset, size, stride, requires_grad, hooks = args[:6]
        meta = args[6] if len(args) == 7 else None
        if id(storage) not in self._storages:
            raise _Refused("a tensor's storage is not a storage record of the file")
        nbytes = self._storages[id(storage)][1]
        _check_int(offset, "a tensor's storage offset")
        for seq, what in ((size, "size"), (stride, "stride")):
            if type(seq) is not tuple or len(seq) > _MAX_TENSOR_DIMS:
                raise _Refused(f"a tensor's {what} must be a tuple of at most {_MAX_TENSOR_DIMS} ints, got {seq!r}"[:200])
            for v in seq:
                _check_int(v, f"a tensor's {what} entry")
        if len(size) != len(stride):
            raise _Refused(f"a tensor's size {size} and stride {stride} differ in length")
        if type(requires_grad) is not bool or not isinstance(hooks, dict) or hooks or meta not in (None, {}):
            raise _Refused("a tensor carries backward hooks or attributes (only plain tensors are allowed)")
        element = torch._utils._element_size(storage.dtype)
        numel = math.prod(size)
        if numel:
            last = offset + sum((s - 1) * t for s, t in zip(size, stride))
            if (last + 1) * element > nbytes or numel * element > nbytes:
                raise _Refused(f"a tensor of size {tuple(size)} and stride {tuple(stride)} at offset {offset} does "
                               f"not fit its storage of {nbytes} bytes")
        elif offset * element > nbytes:
            raise _Refused(f"a tensor's storage offset {offset} lies outside its storage of {nbytes} bytes")
        # No more tensor elements than the file holds: views that repeat a storage cannot multiply its size.
        self._tensor_bytes += numel * element
        if self._tensor_bytes > self._storage_bytes:
            raise _Refused(f"its tensors hold {self._tensor_bytes} bytes, more than its {self._storage_bytes} "
                           "bytes of storage records")
        return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())

    def _rebuild_parameter(self, args):
        if len(args) != 3 or not torch.is_tensor(args[0]) or type(args[1]) is not bool or args[2]:
            raise _Refused("_rebuild_parameter takes a tensor, a bool and no hooks")
        return args[0]

    def _persistent(self, pid):
        if (type(pid) is not tuple or len(pid) != 5 or pid[0] not in ("storage", b"storage")
                or type(pid[1]) is not torch.serialization.StorageType or type(pid[2]) is not str
                or type(pid[3]) is not str):
            # Only the types are named: the repr of whatever a crafted file put there may itself run code or warn.
            got = (f"a tuple of ({', '.join(type(v).__name__ for v in pid[:8])})" if type(pid) is tuple
                   else f"a {type(pid).__name__}")
            raise _Refused(f"a persistent id must be ('storage', type, key, location, numel), got {got}"[:200])
        _, storage_type, key, _, numel = pid
        _check_int(numel, "a storage's numel")
        dtype = storage_type.dtype
        if key not in self._records:
            raise _Refused(f"a storage refers to the record data/{key}, which the file does not hold")
        nbytes = numel * torch._utils._element_size(dtype)
        if nbytes != self._records[key]:
            raise _Refused(f"the storage data/{key} claims {nbytes} bytes, its record holds {self._records[key]}")
        storage = self.persistent_load(pid)  # torch's: reads the record (cached per key)
        if id(storage) not in self._storages:
            self._storages[id(storage)] = (storage, nbytes)
            self._storage_bytes += nbytes
        return storage

    # -- the machine ----------------------------------------------------------------------------------------
    def load(self):
        data, pos, n = self._data, 0, len(self._data)
        stack: list = []
        marks: list = []
        memo: Dict[int, Any] = {}

        def take(k):
            nonlocal pos
            if k < 0 or pos + k > n:
                raise _Refused("its pickle is truncated")
            chunk = data[pos:pos + k]
            pos += k
            return chunk

        def pop_mark():
            nonlocal stack
            if not marks:
                raise _Refused("its pickle pops a MARK it never set")
            items, stack = stack, marks.pop()
            return items

        def top(kind=None):
            if not stack:
                raise _Refused("its pickle reads from an empty stack")
            if kind is not None and type(stack[-1]) not in kind:
                raise _Refused(f"its pickle adds items to a {type(stack[-1]).__name__}")
            return stack[-1]

        def key_ok(k):
            if type(k) not in (str, int, float, bool, type(None), tuple):
                raise _Refused(f"a dict key must be a plain value, got a {type(k).__name__}")
            return k

        while True:
            op = take(1)[0]
            if op == 0x80:  # PROTO
                if take(1)[0] > 5:
                    raise _Refused("its pickle protocol is newer than 5")
            elif op == 0x95:  # FRAME: the length of the next frame, which is read like the rest
                take(8)
            elif op == 0x2E:  # STOP
                if len(stack) != 1 or marks:
                    raise _Refused("its pickle ends with more than one value")
                return stack[0]
            elif op == 0x28:  # MARK
                marks.append(stack)
                stack = []
            elif op == 0x4E:  # NONE
                stack.append(None)
            elif op in (0x88, 0x89):  # NEWTRUE, NEWFALSE
                stack.append(op == 0x88)
            elif op == 0x4B:  # BININT1
                stack.append(take(1)[0])
            elif op == 0x4D:  # BININT2
                stack.append(struct.unpack("<H", take(2))[0])
            elif op == 0x4A:  # BININT
                stack.append(struct.unpack("<i", take(4))[0])
            elif op == 0x8A:  # LONG1
                k = take(1)[0]
                if k > _MAX_LONG_BYTES:
                    raise _Refused(f"it holds an int of {k} bytes (at most {_MAX_LONG_BYTES} are allowed)")
                stack.append(int.from_bytes(take(k), "little", signed=True))
            elif op == 0x47:  # BINFLOAT
                stack.append(struct.unpack(">d", take(8))[0])
            elif op in (0x58, 0x8C):  # BINUNICODE, SHORT_BINUNICODE
                k = struct.unpack("<I", take(4))[0] if op == 0x58 else take(1)[0]
                try:
                    stack.append(str(take(k), "utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise _Refused("it holds a string that is not UTF-8") from None
            elif op == 0x7D:  # EMPTY_DICT
                stack.append({})
            elif op == 0x5D:  # EMPTY_LIST
                stack.append([])
            elif op == 0x29:  # EMPTY_TUPLE
                stack.append(())
            elif op == 0x74:  # TUPLE
                items = pop_mark()
                stack.append(tuple(items))
            elif op in (0x85, 0x86, 0x87):  # TUPLE1..3
                k = op - 0x84
                if len(stack) < k:
                    raise _Refused("its pickle reads from an empty stack")
                stack[-k:] = [tuple(stack[-k:])]
            elif op == 0x6C:  # LIST
                items = pop_mark()
                stack.append(list(items))
            elif op == 0x64:  # DICT
                items = pop_mark()
                if len(items) % 2:
                    raise _Refused("its pickle builds a dict from an odd number of items")
                stack.append({key_ok(items[i]): items[i + 1] for i in range(0, len(items), 2)})
            elif op == 0x61:  # APPEND
                item = stack.pop() if stack else top()
                top((list,)).append(item)
            elif op == 0x65:  # APPENDS
                items = pop_mark()
                top((list,)).extend(items)
            elif op == 0x73:  # SETITEM
                if len(stack) < 3:
                    raise _Refused("its pickle reads from an empty stack")
                v, k = stack.pop(), stack.pop()
                top((dict, OrderedDict))[key_ok(k)] = v
            elif op == 0x75:  # SETITEMS
                items = pop_mark()
                if len(items) % 2:
                    raise _Refused("its pickle sets an odd number of dict items")
                target = top((dict, OrderedDict))
                for i in range(0, len(items), 2):
                    target[key_ok(items[i])] = items[i + 1]
            elif op in (0x71, 0x72, 0x94):  # BINPUT, LONG_BINPUT, MEMOIZE
                i = take(1)[0] if op == 0x71 else struct.unpack("<I", take(4))[0] if op == 0x72 else len(memo)
                memo[i] = top()
            elif op in (0x68, 0x6A):  # BINGET, LONG_BINGET
                i = take(1)[0] if op == 0x68 else struct.unpack("<I", take(4))[0]
                if i not in memo:
                    raise _Refused(f"its pickle reads the memo entry {i}, which was never set")
                stack.append(memo[i])
            elif op == 0x63:  # GLOBAL
                line_end = data.find(b"\n", pos)
                line_end2 = data.find(b"\n", line_end + 1) if line_end >= 0 else -1
                if line_end < 0 or line_end2 < 0:
                    raise _Refused("its pickle is truncated")
                module = data[pos:line_end].decode("ascii", "replace")
                name = data[line_end + 1:line_end2].decode("ascii", "replace")
                pos = line_end2 + 1
                stack.append(self.find_class(module, name))
            elif op == 0x93:  # STACK_GLOBAL
                if len(stack) < 2 or type(stack[-1]) is not str or type(stack[-2]) is not str:
                    raise _Refused("STACK_GLOBAL needs two strings")
                name, module = stack.pop(), stack.pop()
                stack.append(self.find_class(module, name))
            elif op == 0x52:  # REDUCE
                if len(stack) < 2:
                    raise _Refused("its pickle reads from an empty stack")
                args, func = stack.pop(), stack[-1]
                if type(func) is not _Callable:
                    raise _Refused(f"it calls {_describe(func)}, which a checkpoint may only reference")
                if type(args) is not tuple:
                    raise _Refused(f"it calls {func.name} with arguments that are not a tuple")
                stack[-1] = func.run(self, args)
            elif op == 0x62:  # BUILD: only the attributes torch's state dicts carry (an OrderedDict's _metadata)
                if len(stack) < 2:
                    raise _Refused("its pickle reads from an empty stack")
                state, inst = stack.pop(), stack[-1]
                if (type(inst) is not OrderedDict or type(state) is not dict
                        or not set(state) <= {"_metadata"}):
                    raise _Refused(f"it sets the state of a {type(inst).__name__} (only an OrderedDict's "
                                   "_metadata may be set)")
                for k, v in state.items():
                    _check_module_versions(v)
                    setattr(inst, k, v)
            elif op == 0x51:  # BINPERSID
                if not stack:
                    raise _Refused("its pickle reads from an empty stack")
                stack.append(self._persistent(stack.pop()))
            else:
                raise _Refused(f"its pickle uses the opcode {bytes([op])!r}, which is not allowed")


def _check_module_versions(value) -> None:
    """A state dict's ``_metadata`` attribute, which ``load_state_dict`` hands to every module: torch writes
    ``{module name: {"version": int}}``; anything else would reach torch's loading code as something it does not
    expect."""
    if not isinstance(value, dict):
        raise _Refused(f"its state dict's _metadata attribute is a {type(value).__name__}, expected a dict")
    for name, entry in value.items():
        if (type(name) is not str or not isinstance(entry, dict) or len(entry) > 8
                or not all(type(k) is str and (v is None or type(v) in (int, bool, str)) for k, v in entry.items())):
            raise _Refused(f"its state dict's _metadata attribute holds {name!r}: {entry!r}, expected a dict of at "
                           "most 8 plain values such as {'version': 1}"[:300])


_CALLABLES = {
    "collections.OrderedDict": _Callable("collections.OrderedDict", _Interpreter._ordered_dict),
    "torch._utils._rebuild_tensor_v2": _Callable("torch._utils._rebuild_tensor_v2", _Interpreter._rebuild_tensor),
    "torch._utils._rebuild_parameter": _Callable("torch._utils._rebuild_parameter", _Interpreter._rebuild_parameter),
}


def _describe(obj) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name is not None:
        return f"{getattr(obj, '__module__', None) or '?'}.{name}"
    return f"a {type(obj).__name__}"


def reference_names(objects: Iterable[object]) -> Dict[str, object]:
    """``{"module.qualname": object}`` as pickle's GLOBAL names them (e.g. ``torch._C._nn.gelu``)."""
    out = {f"{o.__module__}.{o.__qualname__}": o for o in objects}
    for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
              torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool):
        out[str(t)] = t  # dtypes pickle as "torch.float32"
    return out


def _check_archive(path: Path) -> Dict[str, int]:
    """The sizes of the ``data/<key>`` records; refuses what is not a plain, consistent ``torch.save`` archive."""
    try:
        info = os.stat(path)  # follows a symbolic link: the file it names is what is read
    except FileNotFoundError:
        raise FileNotFoundError(f"no checkpoint file at {path}") from None
    except OSError as e:
        raise UnsafeCheckpointError(f"cannot load {path}: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, pipe or socket)"
        raise UnsafeCheckpointError(f"cannot load {path}: it is {kind}, not a checkpoint file")
    size = info.st_size
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise UnsafeCheckpointError(
            f"cannot load {path}: it is not a torch checkpoint in torch.save's zip format ({e}). Files in torch's "
            "legacy format are refused: their reader allocates storages at sizes the file states"
        ) from e
    prefixes = {e.filename.split("/", 1)[0] for e in entries}
    if len(prefixes) != 1:
        raise UnsafeCheckpointError(f"cannot load {path}: a torch archive has one top-level folder, got "
                                    f"{sorted(prefixes)[:5]}")
    records, seen = {}, set()
    for e in entries:
        rest = e.filename.split("/", 1)[1] if "/" in e.filename else ""
        if e.filename in seen:
            raise UnsafeCheckpointError(f"cannot load {path}: the record {e.filename} appears twice")
        seen.add(e.filename)
        if e.compress_type != zipfile.ZIP_STORED or e.file_size != e.compress_size or e.flag_bits & 0x1:
            raise UnsafeCheckpointError(f"cannot load {path}: the record {e.filename} is compressed or encrypted "
                                        "(torch.save stores records as they are)")
        if e.header_offset + e.file_size > size:
            raise UnsafeCheckpointError(f"cannot load {path}: the record {e.filename} claims {e.file_size} bytes "
                                        "beyond the end of the file (truncated or damaged)")
        match = _DATA_RECORD.fullmatch(rest)
        if match:
            records[match.group(1)] = e.file_size
        elif rest != "data.pkl" and rest not in _AUX_RECORDS:
            raise UnsafeCheckpointError(f"cannot load {path}: it holds the record {e.filename!r}, which torch.save "
                                        "does not write (TorchScript archives and other formats are refused)")
    if f"{prefixes.pop()}/data.pkl" not in seen:
        raise UnsafeCheckpointError(f"cannot load {path}: it has no data.pkl record")
    return records


def read_torch_file(path, map_location=None, references: Dict[str, object] = None):
    """Read a ``torch.save`` file with the restricted interpreter (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The file (a symbolic link is followed; it must name a regular file).
    map_location : optional
        As in ``torch.load``.
    references : dict, optional
        ``{"module.name": object}``: the globals the file may reference (never call); see :func:`reference_names`.

    Returns
    -------
    object
        The unpickled content.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    UnsafeCheckpointError
        Anything else that keeps the file from being read as described, with ``path`` and the reason.
    """
    path = Path(path)
    records = _check_archive(path)
    if os.getenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise UnsafeCheckpointError(
            f"cannot load {path}: TORCH_FORCE_WEIGHTS_ONLY_LOAD is set, which makes torch.load refuse this package's "
            "restricted reader (stricter than weights_only: it calls nothing the file names). Unset it"
        )
    references = dict(references or {})

    class Unpickler(_Interpreter):
        def __init__(self, file, **kwargs):
            super().__init__(file, records=records, references=references, **kwargs)

    def legacy_load(*args, **kwargs):  # torch's reader took the file for its legacy format: refuse it
        raise _Refused("it is not in torch.save's zip format")

    module = SimpleNamespace(__name__="boon_ext.torch_file", Unpickler=Unpickler, load=legacy_load)
    try:
        return torch.load(path, map_location=map_location, pickle_module=module, weights_only=False, mmap=False)
    except (UnsafeCheckpointError, MemoryError, KeyboardInterrupt):
        raise
    except _Refused as e:
        raise UnsafeCheckpointError(f"refusing to load {path}: {e}") from None
    except Exception as e:  # noqa: BLE001  (whatever torch's reader says about a damaged archive)
        raise UnsafeCheckpointError(f"cannot load {path} ({type(e).__name__}: {str(e).strip()[:300]})") from e
