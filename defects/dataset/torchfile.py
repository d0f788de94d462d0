"""A reader of PyTorch's legacy ``torch.save`` format (before 1.6, not a zip), without torch.

A legacy file is five pickles in a row, then the raw storages
(``torch/serialization.py: _legacy_save`` writes it, ``_legacy_load`` reads it):

1. the magic number :data:`MAGIC`;
2. the protocol version, :data:`PROTOCOL`;
3. a dict about the machine that wrote it (byte order, C type sizes);
4. the object saved, here a state dict: tensors are
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)``
   and storages are persistent ids ``("storage", FloatStorage, key, location, numel, None)``;
5. the sorted list of the storage keys.

Then, for each key in that order, the storage: its element count (int64) and its elements,
little-endian. Nothing follows the last one.

Unpickling runs code a file names, so this reader lets a pickle build only what the format
needs (an ``OrderedDict``, tensors, storage types) and refuses anything else; the tensors are
read with ``numpy.frombuffer``. Any departure from the format is a :class:`TorchFileError`.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defects.errors import DataError

MAGIC = 0x1950A86A20F9469CFC6C
PROTOCOL = 1001
# The element types of storages, by the name the pickle gives them.
STORAGE_TYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}
DEFAULT_HINT = "Get the file again from where it came from (reinstall the package that ships it)."
_ZIP_SIGNATURE = b"PK\x03\x04"
_COUNT = struct.Struct("<q")


class TorchFileError(DataError):
    headline = "unreadable PyTorch weights file"


class _Refused(Exception):
    """How the file departs from the format (the reader adds the path and the hint)."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    name: str


@dataclass(frozen=True, slots=True)
class _Storage:
    key: str
    dtype: np.dtype
    numel: int


@dataclass(frozen=True, slots=True)
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(
    storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any, hooks: Any
) -> _Tensor:
    """What ``torch._utils._rebuild_tensor_v2`` stands for: where a tensor's elements are."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("it holds a tensor without a storage")
    if not _is_ints(size) or not _is_ints(stride) or len(size) != len(stride):
        raise pickle.UnpicklingError(f"it holds a tensor of size {size!r} and stride {stride!r}")
    if type(offset) is not int or offset < 0 or any(n < 0 for n in (*size, *stride)):
        raise pickle.UnpicklingError(
            f"it holds a tensor at offset {offset!r}, of size {size} and stride {stride}"
        )
    # A saved parameter never repeats elements (broadcast views do): this bounds the memory
    # a crafted file could make the reader take.
    if math.prod(size) > storage.numel:
        raise pickle.UnpicklingError(
            f"it holds a tensor of {math.prod(size)} elements in a storage of {storage.numel}"
        )
    if hooks:
        raise pickle.UnpicklingError("it holds a tensor with backward hooks")
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def _is_ints(value: Any) -> bool:
    return isinstance(value, tuple) and all(type(n) is int for n in value)


class _Unpickler(pickle.Unpickler):
    """An unpickler that builds only what a legacy state dict is made of."""

    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_TYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"it names {module}.{name}, which no state dict needs (refused)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"it holds an unknown persistent id {pid!r}")
        _, kind, key, location, numel, view = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"it holds a malformed storage {pid!r}")
        if not isinstance(location, str) or type(numel) is not int or numel < 0:
            raise pickle.UnpicklingError(f"it holds a malformed storage {pid!r}")
        if view is not None:
            raise pickle.UnpicklingError(
                "it holds a storage view, which this reader does not handle"
            )
        storage = _Storage(key, STORAGE_TYPES[kind.name], numel)
        if self.storages.setdefault(key, storage) != storage:
            raise pickle.UnpicklingError(f"it holds the storage {key} twice, of two types or sizes")
        return storage


def _record(stream: io.BytesIO, what: str, unpickler: _Unpickler | None = None) -> Any:
    """The next pickle of the file, ``what`` it should be."""
    try:
        return (unpickler or _Unpickler(stream)).load()
    except Exception as error:
        # A damaged pickle can fail in many ways (a truncated one with EOFError, a bad
        # opcode with UnpicklingError, a wrong argument with TypeError...).
        raise _Refused(f"cannot be read where {what} should be: {error}.") from error


def _header(stream: io.BytesIO) -> tuple[dict[str, _Tensor], list[str]]:
    """The pickles before the storages: the tensors and the sorted keys of their storages."""
    if _record(stream, "the magic number") != MAGIC:
        raise _Refused("is not a legacy torch.save file: its magic number is wrong.")
    protocol = _record(stream, "the protocol version")
    if protocol != PROTOCOL:
        raise _Refused(f"is of protocol {protocol!r}, where this reader knows {PROTOCOL}.")
    machine = _record(stream, "the system information")
    if not isinstance(machine, dict) or machine.get("little_endian") is not True:
        raise _Refused("was written on a big-endian machine, or says nothing of byte order.")
    unpickler = _Unpickler(stream)
    state = _record(stream, "the state dict", unpickler)
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, _Tensor) for key, value in state.items()
    ):
        raise _Refused("holds something other than a state dict of tensors.")
    keys = _record(stream, "the list of storages")
    if not isinstance(keys, list) or sorted(unpickler.storages) != keys:
        raise _Refused("is damaged: its list of storages does not match its tensors.")
    return state, keys


def _storage_arrays(
    data: memoryview, position: int, keys: list[str], state: dict[str, _Tensor]
) -> dict[str, np.ndarray]:
    """The storages' elements, by key (views of ``data``)."""
    # Errors name a tensor of the storage: its key is a number that says nothing.
    storages = {tensor.storage.key: (name, tensor.storage) for name, tensor in state.items()}
    arrays = {}
    for key in keys:
        tensor, storage = storages[key]
        if position + _COUNT.size > len(data):
            raise _Refused(f"is truncated: it ends before the data of {tensor}.")
        (count,) = _COUNT.unpack_from(data, position)
        position += _COUNT.size
        if count != storage.numel:
            raise _Refused(
                f"is damaged: the data of {tensor} has {count} elements, its "
                f"tensor says {storage.numel}."
            )
        size = count * storage.dtype.itemsize
        if position + size > len(data):
            raise _Refused(
                f"is truncated: the data of {tensor} needs {size} bytes at byte "
                f"{position}, {len(data) - position} are left."
            )
        arrays[key] = np.frombuffer(data, storage.dtype, count, position)
        position += size
    if position != len(data):
        raise _Refused(
            f"is damaged: {len(data) - position} bytes follow the last tensor's data, where "
            "the file should end."
        )
    return arrays


def _tensor_array(tensor: _Tensor, storage: np.ndarray) -> np.ndarray:
    """A tensor's elements as an array of its own (the file may lay them out strided)."""
    if math.prod(tensor.size) == 0:
        return np.zeros(tensor.size, storage.dtype)
    last = tensor.offset + sum(
        (n - 1) * step for n, step in zip(tensor.size, tensor.stride, strict=True)
    )
    if last >= len(storage):
        raise _Refused(
            f"is damaged: a tensor reaches element {last} of a storage of {len(storage)}."
        )
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[tensor.offset :],
        shape=tensor.size,
        strides=tuple(step * item for step in tensor.stride),
        writeable=False,
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C")


def read_state_dict(path: Path, hint: str = DEFAULT_HINT) -> dict[str, np.ndarray]:
    """The tensors of a state dict saved by PyTorch's legacy ``torch.save``, by name, as
    NumPy arrays (C order, native byte order). A file that departs from the format in any
    way is refused with :class:`TorchFileError` (a ``DataError``) carrying ``hint``."""
    return parse_state_dict(Path(path).read_bytes(), str(path), hint)


def parse_state_dict(data: bytes, source: str, hint: str = DEFAULT_HINT) -> dict[str, np.ndarray]:
    """:func:`read_state_dict` of a file's bytes, read already (``source`` names the file
    in errors)."""
    view = memoryview(data)
    try:
        if data.startswith(_ZIP_SIGNATURE):
            raise _Refused(
                "is a zip archive: the torch.save format of PyTorch 1.6 and later, which this "
                "reader does not handle (it reads the legacy format only)."
            )
        stream = io.BytesIO(view)
        state, keys = _header(stream)
        arrays = _storage_arrays(view, stream.tell(), keys, state)
        return {
            name: _tensor_array(tensor, arrays[tensor.storage.key])
            for name, tensor in state.items()
        }
    except _Refused as error:
        raise TorchFileError(f"{source} {error}", hint=hint) from error.__cause__
