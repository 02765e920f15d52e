"""Reading untrusted zip archives and HDF5 weight files within bounds.

Project files and imported Keras models are both a zip holding JSON and an HDF5
weights file. Everything here reads them without trusting what they declare:
the zip directory is sized before :mod:`zipfile` parses it, members are streamed
under a byte limit that a lying header cannot raise, and an HDF5 dataset is read
only when it is plain numbers stored contiguously inside the file, as large as
it says, within what the file can hold. Every refusal is a :class:`Refused` with
a one-line message; callers add the file's name.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import h5py
import numpy as np

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
#: Bytes decompressed per read: memory stays bounded whatever a header says.
CHUNK = MIB

# Plain numeric dtypes a weights file may hold (any byte order); plus bfloat16,
# stored as Keras does: 2-byte opaque data with the attribute dtype="bfloat16".
NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)
BFLOAT16 = "bfloat16"

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


class Refused(Exception):
    """What is wrong with an untrusted file, in one line (without the file's name)."""


def size_text(nbytes: int) -> str:
    """``1.5 GiB``, ``64 KiB``, ``17 bytes``."""
    if nbytes >= GIB:
        return f"{nbytes / GIB:.1f} GiB"
    if nbytes >= MIB:
        return f"{nbytes / MIB:.1f} MiB"
    if nbytes >= KIB and nbytes % KIB == 0:
        return f"{nbytes // KIB} KiB"
    return f"{nbytes} bytes"


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of parsed JSON data, without recursion; stops counting past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level > limit:
                return level
            stack.extend((child, level + 1) for child in item)
    return deepest


# ===================================================================== zip
def check_zip_directory(
    handle: IO[bytes], size: int, *, kind: str, max_members: int, max_directory_bytes: int
) -> None:
    """Refuses archives whose directory is too large before zipfile parses all of it.

    zipfile builds one object per directory entry up front; the end record says
    how large the directory is (as zipfile finds it: the last end-of-directory
    signature in the file's final 64 KiB, plus the zip64 record before it).

    Args:
        handle: The archive, seekable.
        size: Its size in bytes.
        kind: What the file should be, for messages ("project file").
        max_members: The most entries the directory may list.
        max_directory_bytes: The largest directory accepted.
    """
    tail_size = min(size, _EOCD.size + 0xFFFF + _ZIP64_LOCATOR.size + _ZIP64_EOCD.size)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    search_from = max(0, len(tail) - (_EOCD.size + (1 << 16)))
    at = tail.rfind(b"PK\x05\x06", search_from)
    if at < 0 or len(tail) - at < _EOCD.size:
        handle.seek(0)
        if handle.read(4) == b"PK\x03\x04":
            raise Refused(f"not a {kind} (a damaged or truncated zip archive)")
        raise Refused(f"not a {kind} (not a zip archive)")
    _, _, _, _, entries, directory_size, _, _ = _EOCD.unpack_from(tail, at)
    counts = [entries] if entries != 0xFFFF else []
    sizes = [directory_size] if directory_size != 0xFFFFFFFF else []
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        record = locator - _ZIP64_EOCD.size
        if record < 0 or tail[record : record + 4] != b"PK\x06\x06":
            raise Refused(f"not a {kind} (damaged zip64 directory)")
        fields = _ZIP64_EOCD.unpack_from(tail, record)
        counts.append(fields[7])
        sizes.append(fields[8])
    if any(count > max_members for count in counts):
        raise Refused(f"not a {kind} (the archive has more than {max_members} members)")
    if any(size > max_directory_bytes for size in sizes):
        raise Refused(f"not a {kind} (its zip directory takes more than {size_text(max_directory_bytes)})")


def is_unsafe_member_name(name: str) -> bool:
    """An absolute path, a drive letter or a ``..`` component: refuse the archive."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


def check_member(info: zipfile.ZipInfo) -> None:
    """Refuses encrypted members and compression methods other than stored and deflated."""
    if info.flag_bits & 0x1:
        raise Refused(f"{info.filename} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Refused(f"{info.filename} uses an unsupported compression method ({info.compress_type})")


def copy_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limit: int,
    write: Callable[[bytes], Any],
    *,
    kind: str,
) -> int:
    """Streams a member into ``write``, never past ``limit`` bytes nor its declared size."""
    if info.file_size > limit:
        raise Refused(f"{info.filename} takes {size_text(info.file_size)} uncompressed; the limit is {size_text(limit)}")
    allowed = min(limit, info.file_size)
    total = 0
    try:
        with archive.open(info) as member:
            # zipfile decompresses at most CHUNK bytes per read, so memory stays
            # bounded even when the header lies about the size.
            while chunk := member.read(CHUNK):
                total += len(chunk)
                if total > allowed:
                    raise Refused(f"{info.filename} is larger than its declared size")
                write(chunk)
    except (zlib.error, EOFError) as exc:
        raise Refused(f"not a {kind} (damaged zip archive: {info.filename}: {exc})") from None
    return total


# ==================================================================== HDF5
@dataclass
class H5Budget:
    """What the rest of an HDF5 file may still declare.

    Attributes:
        label: The file, for messages ("model.weights.h5").
        bytes_left: Bytes all datasets together may still declare.
        objects_left: Groups and datasets still allowed.
        max_elements: Elements of one dataset.
    """

    label: str
    bytes_left: int
    objects_left: int
    max_elements: int = 1 << 31

    def __post_init__(self) -> None:
        self._objects_limit = self.objects_left

    def take_objects(self, count: int) -> None:
        self.objects_left -= count
        if self.objects_left < 0:
            raise Refused(f"{self.label} holds more than {self._objects_limit} groups and datasets")


def h5_children(group: h5py.Group, budget: H5Budget) -> set[str]:
    """A group's entry names, after counting them against the budget; hard links only."""
    budget.take_objects(len(group))
    names = set()
    for name in group:
        link = group.get(name, getlink=True)
        # Soft and external links could point anywhere, other files included.
        if not isinstance(link, h5py.HardLink):
            raise Refused(f"{budget.label}: '{group.name}' holds a link {name[:40]!r}; only plain entries are allowed")
        names.add(name)
    return names


def h5_subgroup(group: h5py.Group, name: str, where: str, budget: H5Budget) -> h5py.Group:
    """``group[name]``, which must be a group."""
    if group.get(name, getclass=True) is not h5py.Group:
        raise Refused(f"{budget.label}: '{name}' under '{where}' should be a group")
    return group[name]


def check_h5_dataset(group: h5py.Group, key: str, what: str, budget: H5Budget) -> h5py.Dataset:
    """Checks everything a dataset declares; returns it, safe to read.

    Only plain numbers stored contiguously inside the file, exactly as many bytes
    as the shape says, within the budget: external and virtual datasets read other
    files, filters may load plugins, and a shape with no data behind it would make
    reading allocate whatever it declares.
    """
    if group.get(key, getclass=True) is not h5py.Dataset:
        raise Refused(f"{budget.label}: {what} is not a dataset")
    dataset = group[key]
    dtype = dataset.dtype
    if not _is_bfloat16(dataset) and not (
        dtype.name in NUMERIC_DTYPES and dtype.names is None and dtype.subdtype is None
    ):
        raise Refused(f"{budget.label}: {what} has dtype {dtype}, which is not a plain number type")
    shape = dataset.shape
    if shape is None:
        raise Refused(f"{budget.label}: {what} has no shape")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if count > budget.max_elements or nbytes > budget.bytes_left:
        raise Refused(
            f"{budget.label}: {what} declares shape {tuple(shape)} ({size_text(nbytes)}), "
            "more than the weights file holds"
        )
    budget.bytes_left -= nbytes
    create = dataset.id.get_create_plist()
    if (
        dataset.is_virtual
        or create.get_layout() != h5py.h5d.CONTIGUOUS
        or create.get_external_count()
        or create.get_nfilters()
    ):
        raise Refused(f"{budget.label}: {what} is not stored as plain data in the file")
    if dataset.id.get_storage_size() != nbytes:
        raise Refused(f"{budget.label}: {what} does not hold the data it declares")
    return dataset


def read_h5_dataset(group: h5py.Group, key: str, what: str, budget: H5Budget) -> np.ndarray:
    """Reads one weight array after :func:`check_h5_dataset`."""
    dataset = check_h5_dataset(group, key, what, budget)
    array = np.asarray(dataset[()])
    if _is_bfloat16(dataset):
        import ml_dtypes  # only bfloat16 weights need it; Keras depends on it

        array = array.view(ml_dtypes.bfloat16)
    return array


def _is_bfloat16(dataset: h5py.Dataset) -> bool:
    """bfloat16 as Keras stores it: 2-byte opaque data tagged with the attribute dtype="bfloat16".

    Only a short fixed-length tag is read (Keras and the project writer write
    one): reading a variable-length string makes HDF5 follow a length and a heap
    address that a damaged file can set to anything, and fuzzing found that to hang.
    """
    dtype = dataset.dtype
    if dtype.kind != "V" or dtype.itemsize != 2 or dtype.names is not None or dtype.subdtype is not None:
        return False
    if "dtype" not in dataset.attrs:
        return False
    attr = h5py.h5a.open(dataset.id, b"dtype")
    kind = attr.get_type()
    if (
        attr.shape != ()
        or not isinstance(kind, h5py.h5t.TypeStringID)
        or kind.is_variable_str()
        or kind.get_size() > 16
    ):
        return False
    value = np.zeros((), dtype=f"S{kind.get_size()}")
    attr.read(value, mtype=h5py.h5t.py_create(value.dtype))
    return value.item().rstrip(b"\0 ") == BFLOAT16.encode()
