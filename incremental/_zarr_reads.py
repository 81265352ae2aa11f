"""Reading the blocks of zarr arrays on local disk without fresh buffers.

For every chunk it reads, zarr 3 reads the file into a new ``bytes``
object, decompresses that into another new ``bytes`` object, and copies
the result into the block. Python's allocator gives a buffer this large
its own mapping (glibc maps every chunk over 32 MiB on its own), so the
kernel maps both buffers page by page and unmaps them after use: about
38,000 page faults for a chunk of 80 MB. On the machine we measured, a
virtual machine, those faults cost twice the CPU of the decompression
itself: reading 20M x 20 float64 of zstd zarr (40 chunks of 80 MB) took
3.1 s of user and 5.3 s of kernel CPU.

Here, when a block is a plain read of a zarr array whose chunks are files
on local disk (``da.from_zarr`` on a folder), its task reads each chunk's
file into a NumPy array and lets numcodecs decompress it straight into
the block: in every fit (:func:`faster_reads`, on the graph ``make_blocks``
builds) and in the lazy outputs of the post-fit methods
(:func:`faster_array_reads`, on ``X`` before ``map_blocks``). A zstd
chunk (zarr's default codec) is not read whole first: with ``zstandard``
installed (the ``zarr`` extra), it is decompressed as it is read, a piece
of 1 MiB at a time, so no buffer of the stored chunk is made at all
(reading 40 chunks of 77 MB in turn: 3.76 s of CPU against 4.26 s
reading each whole, medians of 9). NumPy asks
the kernel for huge pages for arrays this large, so
a fresh array costs a few hundred faults, not tens of thousands. Reading
the same 40 chunks on 2 threads: 2.1-2.4 s (1.3-1.8 s of kernel CPU,
42,000 faults) instead of 4.3-5.3 s (4.5-6.3 s of kernel CPU, 1.55M
faults).

zarr still reads the metadata (the chunk grid, the codecs, the file name
of each chunk) and numcodecs, which zarr uses itself, decompresses; this
module only opens the files. The values are zarr's to the bit. Whatever
it does not know is left to zarr, block by block: other stores (cloud,
zip, memory), sharded or transposed chunks, filters, checksummed or
big-endian chunks, object and string dtypes, a missing chunk (zarr fills
it), a file of the wrong size, a decompression error, a selection that is
not a run of contiguous slices. ``dask.config.set({"incremental.zarr-reads":
False})`` turns it off.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from . import _dask_compat

#: dask config key: whether blocks of zarr arrays are read here (default) or by zarr.
CONFIG_KEY = "incremental.zarr-reads"

#: numcodecs compressors whose ``decode(buf, out=...)`` fills ``out``.
_NUMCODECS_COMPRESSORS = ("Zstd", "Blosc", "LZ4", "GZip", "Zlib", "BZ2", "LZMA")


@dataclass(frozen=True)
class ChunkFiles:
    """Where a zarr array's chunks are on disk, and how each is encoded."""

    folder: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    codec: Any  # a numcodecs codec, or None when chunks are stored raw
    chunk_name: Callable[[tuple[int, ...]], str]

    @property
    def chunk_nbytes(self) -> int:
        return int(np.prod(self.chunks)) * self.dtype.itemsize


def faster_reads(graph: dict) -> dict:
    """``graph`` with each plain read of a zarr array on local disk done by
    :func:`read_block` (same keys, same values), unless turned off."""
    if not dask.config.get(CONFIG_KEY, True):
        return graph
    return _dask_compat.reroute_reads(graph, chunk_files, read_block)


def faster_array_reads(X: Any) -> Any:
    """The dask array ``X`` with its reads done by :func:`read_block` where
    it reads a ``da.from_zarr`` on local disk, as it is or under a slice or
    a rechunk (same name, keys, values), unless turned off; ``X`` itself
    otherwise."""
    if not dask.config.get(CONFIG_KEY, True):
        return X
    return _dask_compat.reroute_array_reads(X, chunk_files, read_block)


def chunk_files(array: Any) -> ChunkFiles | None:
    """The chunk files of a zarr array this module can read, or None.

    Examples
    --------
    >>> import tempfile, numpy as np, zarr
    >>> z = zarr.create_array(tempfile.mkdtemp(), shape=(5, 2), chunks=(2, 2),
    ...                       dtype="f8")
    >>> files = chunk_files(z)
    >>> files.chunks, files.chunk_name((1, 0)), type(files.codec).__name__
    ((2, 2), 'c/1/0', 'Zstd')
    >>> chunk_files(np.zeros(3)) is None
    True
    """
    if not type(array).__module__.startswith("zarr."):
        return None
    try:
        return _chunk_files(array)
    except Exception:  # a zarr we do not know: leave reading to it
        return None


def _chunk_files(array: Any) -> ChunkFiles | None:
    metadata = array.metadata
    dtype = np.dtype(array.dtype)
    if dtype.kind not in "biufcmM" or not dtype.isnative or dtype.fields:
        return None
    if getattr(array, "shards", None) is not None:
        return None
    if metadata.zarr_format == 3:
        codec = _v3_codec(metadata.codecs)
        marker = "zarr.json"
    elif metadata.zarr_format == 2:
        if metadata.filters or metadata.order != "C":
            return None
        codec = _v2_codec(metadata.compressor)
        marker = ".zarray"
    else:
        return None
    folder = _local_folder(array)
    if codec is False or folder is None:
        return None
    if not os.path.isfile(os.path.join(folder, marker)):
        return None
    return ChunkFiles(
        folder,
        tuple(map(int, array.shape)),
        tuple(map(int, array.chunks)),
        dtype,
        codec,
        metadata.encode_chunk_key,
    )


def _v3_codec(codecs: tuple) -> Any:
    """The numcodecs codec for zarr 3 codecs ``bytes`` [+ one compressor],
    None for ``bytes`` alone, False for anything else."""
    import numcodecs
    from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

    if not codecs or type(codecs[0]) is not BytesCodec or len(codecs) > 2:
        return False
    endian = codecs[0].endian
    if endian is not None and getattr(endian, "value", endian) != _NATIVE:
        return False
    if len(codecs) == 1:
        return None
    compressor = codecs[1]
    if type(compressor) is ZstdCodec:
        return numcodecs.Zstd(level=compressor.level, checksum=compressor.checksum)
    if type(compressor) is BloscCodec:
        return numcodecs.Blosc()  # the blosc header says how to decompress
    if type(compressor) is GzipCodec:
        return numcodecs.GZip(level=compressor.level)
    return False


def _v2_codec(compressor: Any) -> Any:
    """A zarr 2 compressor if it is a known numcodecs one, None for none."""
    if compressor is None:
        return None
    known = type(compressor).__module__.startswith("numcodecs.")
    return (
        compressor
        if known and type(compressor).__name__ in _NUMCODECS_COMPRESSORS
        else False
    )


_NATIVE = "little" if np.little_endian else "big"


def _local_folder(array: Any) -> str | None:
    """The folder of ``array``'s files when its store is a local folder."""
    store, path = array.store_path.store, array.store_path.path
    kind = type(store).__name__
    if kind == "LocalStore":
        root = str(store.root)
    elif kind == "FsspecStore":
        from fsspec.implementations.local import LocalFileSystem

        fs = getattr(store.fs, "sync_fs", store.fs)  # zarr wraps it async
        if not isinstance(fs, LocalFileSystem):
            return None
        root = str(store.path)
    else:
        return None
    return os.path.join(root, path) if path else root


def read_block(array: Any, selection: Any, files: ChunkFiles) -> np.ndarray:
    """``array[selection]`` read from ``files``; by zarr where it must be.

    Examples
    --------
    >>> import tempfile, numpy as np, zarr
    >>> z = zarr.create_array(tempfile.mkdtemp(), shape=(5, 2), chunks=(2, 2),
    ...                       dtype="i8")
    >>> z[:] = np.arange(10).reshape(5, 2)
    >>> read_block(z, (slice(1, 5), slice(0, 2)), chunk_files(z))
    array([[2, 3],
           [4, 5],
           [6, 7],
           [8, 9]])
    """
    region = _region(selection, files.shape)
    if region is not None:
        out = np.empty([stop - start for start, stop in region], files.dtype)
        try:
            if all(
                _read_chunk(files, region, at, out) for at in _chunks_of(files, region)
            ):
                return out
        except Exception:  # zarr reads it, or raises its own error
            pass
    return np.asarray(array[selection])


def _region(selection: Any, shape: tuple[int, ...]) -> list[tuple[int, int]] | None:
    """``(start, stop)`` along each axis for a selection of plain slices
    within ``shape`` covering something, else None."""
    if not isinstance(selection, tuple) or len(selection) != len(shape):
        return None
    region = []
    for part, size in zip(selection, shape):
        if not isinstance(part, slice) or part.step not in (None, 1):
            return None
        start, stop, _ = part.indices(size)
        if stop <= start:
            return None
        region.append((start, stop))
    return region


def _chunks_of(files: ChunkFiles, region: list[tuple[int, int]]):
    """The grid coordinates of every chunk ``region`` touches."""
    return itertools.product(
        *(
            range(start // chunk, -(-stop // chunk))
            for (start, stop), chunk in zip(region, files.chunks)
        )
    )


def _read_chunk(
    files: ChunkFiles,
    region: list[tuple[int, int]],
    at: tuple[int, ...],
    out: np.ndarray,
) -> bool:
    """Put chunk ``at``'s part of ``region`` into ``out``; False to leave
    the block to zarr (a chunk never written, a file of unexpected size)."""
    lows = [i * chunk for i, chunk in zip(at, files.chunks)]
    inside = tuple(
        slice(max(start, low) - low, min(stop, low + chunk) - low)
        for (start, stop), low, chunk in zip(region, lows, files.chunks)
    )
    target = out[
        tuple(
            slice(low + part.start - start, low + part.stop - start)
            for (start, _), low, part in zip(region, lows, inside)
        )
    ]
    whole = all(
        part.stop - part.start == chunk for part, chunk in zip(inside, files.chunks)
    )
    # Straight into the block when the chunk fills a contiguous part of it.
    direct = whole and target.flags.c_contiguous
    decoded = target if direct else np.empty(files.chunks, files.dtype)
    into = decoded.reshape(-1).view(np.uint8)
    try:
        file = open(os.path.join(files.folder, files.chunk_name(at)), "rb", buffering=0)
    except FileNotFoundError:
        return False
    with file:
        size = os.fstat(file.fileno()).st_size
        if files.codec is None:
            if size != files.chunk_nbytes or not _read_into(file, into):
                return False
        elif (zstandard := _streaming(files.codec)) is not None:
            if not _stream_zstd(zstandard, file, into):
                return False
        else:
            stored = np.empty(size, np.uint8)
            if not _read_into(file, stored) or not _decode(files.codec, stored, into):
                return False
    if not direct:
        target[...] = decoded[inside]
    return True


def _decode(codec: Any, stored: np.ndarray, into: np.ndarray) -> bool:
    """Decompress ``stored`` into ``into``; False if the sizes differ."""
    from numcodecs.compat import ensure_contiguous_ndarray

    # A codec may give its own buffer instead of filling ``into``.
    result = ensure_contiguous_ndarray(codec.decode(stored, out=into))
    result = result.reshape(-1).view(np.uint8)
    if result.size != into.size:
        return False
    if not np.shares_memory(result, into):
        into[...] = result
    return True


#: Bytes of a zstd chunk's file read at a time when it is decompressed as
#: it is read: small enough to stay in the CPU's cache.
STREAM_READ_BYTES = 1 << 20


@functools.cache
def _zstandard() -> Any:
    """The ``zstandard`` module, or None when it is not installed."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def _streaming(codec: Any) -> Any:
    """The ``zstandard`` module when ``codec`` is zstd and it is installed,
    so the chunk is decompressed as it is read; None otherwise."""
    return _zstandard() if type(codec).__name__ == "Zstd" else None


def _stream_zstd(zstandard: Any, file: Any, into: np.ndarray) -> bool:
    """Decompress the zstd ``file`` into ``into`` as it is read, a
    :data:`STREAM_READ_BYTES` piece at a time; False if it holds fewer or
    more values. Damaged data raises ``zstandard.ZstdError``."""
    reader = zstandard.ZstdDecompressor().stream_reader(
        file, read_size=STREAM_READ_BYTES, read_across_frames=True, closefd=False
    )
    # Reading one more byte checks the frame's end (and its checksum).
    return _read_into(reader, into) and reader.read(1) == b""


def _read_into(file: Any, buffer: np.ndarray) -> bool:
    """Fill ``buffer`` from ``file``; False if the file ends first."""
    view, filled = memoryview(buffer), 0
    while filled < len(view):
        got = file.readinto(view[filled:])
        if not got:
            return False
        filled += got
    return True
