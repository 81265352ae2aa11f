"""Cut user inputs into aligned row blocks: ``(X_i, y_i, params_i)`` for each i.

This module owns input normalisation: which containers are accepted, how ``y``
and per-sample fit parameters are cut along ``X``'s row blocks, and how the
blocks are computed from one task graph that is built and optimised once. It
knows nothing of scikit-learn estimators, of which fit parameters are
per-sample (the plan decides), nor of the order in which blocks are consumed.

Runners use :class:`Blocks` through its methods only: :meth:`Blocks.keys`
names the graph keys some blocks need, :meth:`Blocks.graph_for` gives the
tasks that compute them, and :meth:`Blocks.fill` puts computed values (or
futures) in their place; :meth:`Blocks.compute` does all three in one
scheduler call.

Where a block is a plain read of a zarr array on local disk, its task is
``_zarr_reads.read_block`` instead of zarr's own read (same key, same
values, fewer fresh buffers).

Why one materialised graph: computing a single block of a dask collection
through ``collection.blocks[i].compute()`` re-optimises the whole graph each
time, which costs about 0.1 s per block. Building the graph once and culling
it to the few keys a group of blocks needs costs microseconds.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import is_dask_collection
from dask.core import get_dependencies

from . import _dask_compat
from ._cache import CACHE, FitCache, FitScope, is_transient
from ._zarr_reads import faster_reads


class _Key(NamedTuple):
    """A reference to a key of the materialised graph (as opposed to a value)."""

    key: Hashable


def is_dask_array(x: Any) -> bool:
    return isinstance(x, da.Array)


def is_dask_frame(x: Any) -> bool:
    """True for dask DataFrames and Series (not for dask arrays or bags)."""
    if not is_dask_collection(x) or is_dask_array(x):
        return False
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask[dataframe] is a dependency
        return False
    return isinstance(x, (dd.DataFrame, dd.Series))


def num_rows(x: Any) -> int:
    """Number of rows of an in-memory block (array, sparse, pandas, list)."""
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    try:
        return len(x)
    except TypeError:
        if shape is not None or not hasattr(x, "__array__"):
            raise
    # An array-like known only through ``__array__`` (no shape, no len).
    return num_rows(np.asarray(x))


def rows_or_nan(X: Any) -> float:
    """Rows of X, or NaN when they are not known without computing."""
    if is_dask_array(X):
        return X.shape[0]
    if is_dask_frame(X):
        return math.nan
    try:
        return num_rows(X)
    except TypeError:
        return math.nan


def take_rows(x: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of an in-memory array-like, keeping its type."""
    if hasattr(x, "iloc"):
        return x.iloc[start:stop]
    return x[start:stop]


def whole_rows(X: Any) -> Any:
    """X with every axis but the first in one chunk, so a block is whole rows."""
    if is_dask_array(X) and X.ndim > 1 and any(len(c) > 1 for c in X.chunks[1:]):
        return X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X


def row_chunks(X: Any) -> tuple[int, ...] | None:
    """Rows in each block of a dask collection, or None when not known."""
    if is_dask_array(X):
        chunks = X.chunks[0]
        return None if any(math.isnan(c) for c in chunks) else tuple(map(int, chunks))
    return None


def n_blocks_of(X: Any) -> int:
    if is_dask_array(X):
        return X.numblocks[0]
    if is_dask_frame(X):
        return X.npartitions
    return 1


def compute_row_chunks(X: Any) -> tuple[int, ...]:
    """Rows in each block, computing them if dask does not know (one pass).

    The counts are those of the blocks :func:`make_blocks` cuts: an array's
    are counted on its own graph, a frame's for each partition it reports.
    """
    known = row_chunks(X)
    if known is not None:
        return known
    if is_dask_array(X):
        return tuple(map(int, X.compute_chunk_sizes().chunks[0]))
    if is_dask_frame(X):
        return _partition_lengths(X)
    return (num_rows(X),)


def _partition_lengths(frame: Any) -> tuple[int, ...]:
    """Rows of each partition ``frame.npartitions`` reports (one pass)."""
    # Without this, a column of a parquet frame is counted in the fewer,
    # larger partitions dask's optimiser reads (6 counts for 40 partitions).
    with _dask_compat.reported_partitions():
        counts = tuple(int(n) for n in frame.map_partitions(len).compute())
    if len(counts) == frame.npartitions:
        return counts
    # A dask that tunes whatever we ask: count on the graph make_blocks
    # builds, which is lowered without tuning (and reads every column).
    return tuple(make_blocks(frame).map_blocks(_rows_of_x))


def _rows_of_x(X: Any) -> int:
    return num_rows(X)


def frame_as_array(frame: Any) -> da.Array:
    """A dask DataFrame or Series as a lazy dask array, a block per partition.

    The rows of each block stay unknown (NaN) until something counts them.
    Not ``frame.to_dask_array(lengths=True)``: dask makes the array from the
    frame optimised, where a parquet column may be read in fewer partitions
    than the frame reports, and then refuses the lengths it counted
    ("6 != 40"). Made with dask's partition tuning off, the array has one
    block per reported partition; on a dask that cannot turn tuning off it
    may have fewer, which :func:`make_blocks` handles by counting rows.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import pandas as pd
    >>> y = dd.from_pandas(pd.Series([1, 2, 3, 4, 5]), npartitions=2)
    >>> frame_as_array(y).chunks
    ((nan, nan),)
    """
    numpy_dtype = getattr(getattr(frame, "dtype", None), "numpy_dtype", None)
    with _dask_compat.reported_partitions():
        if numpy_dtype is None:
            return frame.to_dask_array()
        # A Series of a pandas extension dtype (Int64, boolean, int64[pyarrow])
        # would come out as objects, which scikit-learn refuses as labels of
        # unknown type; each partition gives its NumPy values instead (floats
        # with NaN where a value is missing, which the classes pass names).
        meta = np.empty(0, dtype=numpy_dtype)
        return frame.map_partitions(_series_values, meta=meta)


def _series_values(part: Any) -> np.ndarray:
    return part.to_numpy()


def describe_type(value: Any) -> str:
    """``numpy.ndarray``, ``pandas.DataFrame``, ...: for error messages."""
    return type(value).__module__.split(".")[0] + "." + type(value).__name__


def cores() -> int:
    """Cores dask may use here (its ``num_workers`` setting, else the CPUs
    this process may run on)."""
    from dask.system import CPU_COUNT

    return int(dask.config.get("num_workers", None) or CPU_COUNT)


def configured_get() -> Callable | None:
    """The scheduler ``get`` the user configured dask with, if any."""
    return dask.base.get_scheduler()


def default_get() -> Callable:
    """The scheduler ``get`` dask is configured with, else the threaded one."""
    return configured_get() or dask.threaded.get


@dataclass
class Blocks:
    """Aligned row blocks of several named inputs, ready to be computed.

    ``parts[i]`` maps each name (``"X"``, ``"y"``, ``"sample_weight"``, ...) to
    either a reference to a key of ``graph`` or an in-memory value. ``offsets``
    gives each block's first row when the row counts are known.
    """

    names: tuple[str, ...]
    parts: list[dict[str, Any]]
    graph: dict
    offsets: tuple[int, ...] | None = None
    nbytes: float = math.nan
    cache: FitCache | None = None

    @property
    def n_blocks(self) -> int:
        return len(self.parts)

    @property
    def block_bytes(self) -> float:
        """Bytes of X in an average block; NaN when not known."""
        return self.nbytes / self.n_blocks if self.n_blocks else math.nan

    def describe(self, index: int) -> str:
        """Human words for block ``index``: its number and, if known, its rows."""
        text = f"block {index} of {self.n_blocks}"
        if self.offsets is not None:
            text += f" (rows {self.offsets[index]}:{self.offsets[index + 1]})"
        return text

    def row_counts(self) -> tuple[int, ...] | None:
        """Rows of each block, when known without computing."""
        return None if self.offsets is None else tuple(np.diff(self.offsets))

    def keys(self, indices: Sequence[int]) -> list[Hashable]:
        """The graph keys that the blocks at ``indices`` need, each once."""
        return list(
            dict.fromkeys(
                ref.key
                for i in indices
                for ref in self.parts[i].values()
                if isinstance(ref, _Key)
            )
        )

    def graph_for(self, keys: Sequence[Hashable]) -> dict:
        """The tasks that compute ``keys`` (culled from the whole graph)."""
        return cull_present(self.graph, keys)

    def fill(
        self, indices: Sequence[int], values: Mapping[Hashable, Any]
    ) -> list[dict[str, Any]]:
        """The blocks at ``indices``, each key replaced by its entry in ``values``.

        ``values`` may hold computed arrays or, on a cluster, futures.
        """
        return [
            {
                name: values[ref.key] if isinstance(ref, _Key) else ref
                for name, ref in self.parts[i].items()
            }
            for i in indices
        ]

    def compute(
        self, indices: Sequence[int], get: Callable | None = None
    ) -> list[dict[str, Any]]:
        """Compute the blocks at ``indices`` in one scheduler call.

        ``get`` is a dask scheduler ``get(graph, keys)`` function; by default
        the one dask is configured to use, else the threaded scheduler.
        """
        keys = self.keys(indices)
        values: dict = {}
        if self.cache is not None:
            for key in keys:
                kept = self.cache.lookup(key)
                if kept is not None:
                    values[key] = kept
        missing = [key for key in keys if key not in values]
        if missing:
            get = get or default_get()
            computed = dict(zip(missing, get(self.graph_for(missing), missing)))
            if self.cache is not None:
                self.cache.store(computed)
            values.update(computed)
        return self.fill(indices, values)

    def close(self) -> None:
        """The fit using these blocks ended: what it kept may now make room."""
        if self.cache is not None:
            self.cache.close()

    def map_blocks(
        self,
        func: Callable,
        *args: Any,
        indices: Sequence[int] | None = None,
        get: Callable | None = None,
    ) -> list[Any]:
        """``func(*args, **parts_of_block)`` for each block, in one scheduler call.

        One task per block runs next to the block; only the results travel.
        (Building ``dask.delayed`` calls instead would cull the whole graph
        once per block: quadratic in the number of blocks.)
        """
        graph, keys = self.map_graph(func, *args, indices=indices)
        get = get or default_get()
        return list(get(cull_present(graph, keys), keys))

    def map_graph(
        self, func: Callable, *args: Any, indices: Sequence[int] | None = None
    ) -> tuple[dict, list[Hashable]]:
        """The graph of :meth:`map_blocks` and its output keys, not computed."""
        indices = range(self.n_blocks) if indices is None else indices
        token = uuid.uuid4().hex[:12]
        graph = dict(self.graph)
        # Each shared argument (a fitted estimator, say) enters the graph once.
        arg_keys = [(f"incremental-arg-{token}", j) for j in range(len(args))]
        graph.update(zip(arg_keys, args))
        keys = []
        for i in indices:
            names = tuple(self.parts[i])
            values = [
                ref.key if isinstance(ref, _Key) else ref
                for ref in self.parts[i].values()
            ]
            key = (f"incremental-map-{token}", i)
            # dask's tuple task spec: keys among the arguments are replaced by
            # their values before the call.
            graph[key] = (_call_with_parts, func, len(args), names, *arg_keys, *values)
            keys.append(key)
        return graph, keys


def _call_with_parts(func: Callable, n_args: int, names: tuple, *values: Any) -> Any:
    return func(*values[:n_args], **dict(zip(names, values[n_args:])))


def cull_present(graph: dict, keys: Sequence[Hashable]) -> dict:
    """The tasks ``keys`` need, following only keys present in ``graph``.

    A collection persisted on a cluster refers to keys held there as futures
    and absent from its graph; the cluster resolves those itself.
    """
    out: dict = {}
    stack = list(keys)
    while stack:
        key = stack.pop()
        if key in out or key not in graph:
            continue
        out[key] = graph[key]
        stack.extend(get_dependencies(graph, task=graph[key]))
    return out


def _optimized_graph(
    collections: list[Any], lowered: tuple[dict, list] | None = None
) -> tuple[dict, list[list[Hashable]]]:
    """One optimised graph for all collections, and each one's keys per block.

    Optimising them together lets X and a y derived from it share work.
    ``lowered``: their unoptimised graph and keys, if already built.
    """
    if all(map(is_dask_array, collections)):
        graph, keys = lowered or _dask_compat.lowered_graph(collections, optimize=False)
        if len(graph) == len({key for block_keys in keys for key in block_keys}):
            # One task per block and nothing else (arrays made by from_array
            # or from_zarr): nothing to cull or fuse, and optimising would
            # cost about 15 us per task for the same graph.
            return graph, keys
        # dask fuses each chain of tasks into one that runs its own small
        # graph, ordering it on every run: about 100 us per block, which
        # doubled a fit on 1,000 blocks of 200 rows made by ``X * 1.0``. We
        # compute a few blocks per call, so fusing saves nothing; it is kept
        # only where it merges slices (a getter of a getter), which can
        # spare reading data that is sliced away.
        with _dask_compat.low_level_fusion_off():
            graph, keys = _dask_compat.lowered_graph(collections, optimize=True)
        if not _dask_compat.slices_to_merge(graph):
            return graph, keys
    return _dask_compat.lowered_graph(collections, optimize=True)


def _check_total_rows(name: str, n_value: float, n_rows: float) -> None:
    if not (math.isnan(n_value) or math.isnan(n_rows)) and n_value != n_rows:
        raise ValueError(
            f"X has {int(n_rows)} rows but {name} has {int(n_value)}: "
            "they must have one entry per row of X"
        )


def _align_dask(name: str, value: Any, X: Any, n_blocks: int) -> Any:
    """``value`` as a dask collection with exactly X's row blocks."""
    if is_dask_frame(value):
        if is_dask_frame(X) and value.npartitions == n_blocks:
            return value  # lowered with X into one graph: the same partitions
        value = frame_as_array(value)
    value = whole_rows(value)
    if value.ndim == 0:
        raise ValueError(f"{name} must have one entry per row of X, got a scalar")
    mine, theirs = row_chunks(value), row_chunks(X)
    if is_dask_array(X):
        _check_total_rows(name, value.shape[0], X.shape[0])
    if value.numblocks[0] == n_blocks and (mine is None or mine == theirs):
        # Same blocks, or y's row counts unknown: pair them; the counts are
        # then checked block by block as they are computed.
        return value
    target = compute_row_chunks(X)
    if mine is None:
        value = value.compute_chunk_sizes()
    _check_total_rows(name, value.shape[0], sum(target))
    return value.rechunk({0: target})


def _split_in_memory(name: str, value: Any, X: Any) -> list[Any]:
    """An in-memory per-sample ``value`` cut into X's row blocks."""
    chunks = compute_row_chunks(X)
    _check_total_rows(name, num_rows(value), sum(chunks))
    bounds = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
    return [take_rows(value, a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def check_input(value: Any, name: str = "X") -> None:
    """Raise a TypeError naming what ``value`` (X, or ``name``) is when it
    cannot be cut into row blocks.

    Examples
    --------
    >>> check_input(3.0, "y")
    Traceback (most recent call last):
    ...
    TypeError: y must be a dask array or DataFrame, or an in-memory array-like with one entry per row of X, got builtins.float
    """
    rows = "one row per sample" if name == "X" else "one entry per row of X"
    if is_dask_collection(value):
        if not (is_dask_array(value) or is_dask_frame(value)):
            raise TypeError(
                f"{name} must be an array-like or a dask array or DataFrame, got "
                f"{describe_type(value)}"
            )
        return
    # A string, a dict or a set has a length but no rows: a string would be
    # read as one row per character. (scipy's DOK matrices are dicts too.)
    no_rows = isinstance(value, str | bytes | Mapping | set | frozenset)
    try:
        if (no_rows and not sp.issparse(value)) or getattr(value, "ndim", 1) == 0:
            raise TypeError
        num_rows(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a dask array or DataFrame, or an in-memory "
            f"array-like with {rows}, got {describe_type(value)}"
        ) from None


def make_blocks(
    X: Any,
    y: Any = None,
    *,
    cache_budget: int = 0,
    reread: bool = True,
    read_later: bool = True,
    **per_sample: Any,
) -> Blocks:
    """Align ``X``, ``y`` and per-sample parameters into row blocks.

    ``X`` chunked along columns is rechunked to whole rows; ``y`` and the
    per-sample parameters are cut along ``X``'s row blocks whatever their own
    chunking. In-memory ``X`` is one block.

    With ``cache_budget`` bytes, computed blocks are kept in the process's
    block cache (``_cache``) for the later epochs, the next pipeline stage
    and repeated fits, and blocks it holds are not computed again; call
    ``Blocks.close()`` when the fit ends. ``reread``: whether this fit reads
    its blocks more than once (if not, a wrapper's own lazy output is not
    kept at all); ``read_later``: whether to keep them for what reads them
    after this fit (a pipeline's next stage, a repeated fit). A fit that
    does neither keeps nothing, but finds what is kept.

    Examples
    --------
    >>> import dask.array as da
    >>> blocks = make_blocks(da.ones((10, 2), chunks=4), da.zeros(10, chunks=5))
    >>> blocks.n_blocks, blocks.describe(2)
    (3, 'block 2 of 3 (rows 8:10)')
    >>> [part["y"].shape for part in blocks.compute([0, 2])]
    [(4,), (2,)]
    """
    check_input(X)
    inputs = {"X": X, "y": y, **per_sample}
    inputs = {name: value for name, value in inputs.items() if value is not None}
    if not is_dask_collection(X):
        for name, value in inputs.items():
            if is_dask_collection(value):
                inputs[name] = value.compute()
            if name != "X":
                _check_total_rows(name, num_rows(inputs[name]), num_rows(X))
        n = num_rows(X)
        return Blocks(tuple(inputs), [inputs], {}, (0, n), _nbytes(X))

    X = whole_rows(X)
    n_blocks = n_blocks_of(X)
    lazy: dict[str, Any] = {"X": X}
    in_memory: dict[str, list[Any]] = {}
    for name, value in inputs.items():
        if name == "X":
            continue
        if is_dask_collection(value):
            lazy[name] = _align_dask(name, value, X, n_blocks)
        else:
            in_memory[name] = _split_in_memory(name, value, X)

    cache = None
    if cache_budget > 0:
        graph, keys_per_collection, cache = _cached_graph(
            list(lazy.values()), cache_budget, reread, read_later
        )
    else:
        graph, keys_per_collection = _optimized_graph(list(lazy.values()))
    graph = faster_reads(graph)
    keys = dict(zip(lazy, keys_per_collection))
    _check_graph(graph, keys, n_blocks, inputs)

    def part(name: str, i: int) -> Any:
        if name not in keys:
            return in_memory[name][i]
        # A block held as data in the graph is in memory already.
        data = _dask_compat.graph_data(graph.get(keys[name][i]))
        return _Key(keys[name][i]) if data is None else data

    parts = [{name: part(name, i) for name in inputs} for i in range(n_blocks)]
    chunks = row_chunks(X)
    offsets = (
        tuple(np.concatenate([[0], np.cumsum(chunks)]).astype(int).tolist())
        if chunks
        else None
    )
    return Blocks(tuple(inputs), parts, graph, offsets, _nbytes(X), cache)


def _source_scopes(
    collections: list[Any], fit_only: tuple | None
) -> Callable[[Hashable], tuple | None]:
    """For a graph key, the source layers its value depends on (the root
    layers of the collections' HighLevelGraphs), or None when unknown.

    Keys of a wrapper's own lazy output get ``fit_only`` instead: they are
    kept for this fit alone (None: not kept).
    """
    layers: dict = {}
    dependencies: dict = {}
    for collection in collections:
        if not is_dask_array(collection):
            continue  # a DataFrame's graph is built anew (and costly) on demand
        graph = collection.__dask_graph__()
        layers.update(getattr(graph, "layers", {}))
        dependencies.update(getattr(graph, "dependencies", {}))
    roots: dict[str, tuple] = {}

    def roots_of(name: str) -> tuple:
        if name not in roots:
            seen, stack, found = set(), [name], []
            while stack:
                layer = stack.pop()
                if layer in seen:
                    continue
                seen.add(layer)
                below = dependencies.get(layer, ())
                stack.extend(below)
                if not below:
                    found.append(layers[layer])
            roots[name] = tuple(found)
        return roots[name]

    def scope(key: Hashable) -> tuple | None:
        name = key[0] if isinstance(key, tuple) else key
        if name not in layers:
            return None
        return fit_only if is_transient(layers[name]) else roots_of(name)

    return scope


def _cached_graph(
    collections: list[Any], budget: int, reread: bool, read_later: bool
) -> tuple[dict, list[list[Hashable]], FitCache]:
    """The blocks' graph with the block cache's help, and the fit's view of it.

    When the cache holds blocks the graph depends on (the next stage of a
    pipeline reads its transform of the blocks the last stage read), they
    are put into the unoptimised graph as data: optimising would fuse them
    away. Otherwise the graph is built as without a cache.
    """
    fit_only = (FitScope(),)  # blocks of unknown source: kept for this fit
    scope_of = _source_scopes(collections, fit_only if reread else None)
    raw, raw_keys = _dask_compat.lowered_graph(collections, optimize=False)
    scopes = {key: scope for key in raw if (scope := scope_of(key)) is not None}
    part_keys = {key for block_keys in raw_keys for key in block_keys}
    cache = FitCache(CACHE, budget, scopes, store=reread or read_later)
    held = {
        key: value
        for key in raw
        if key not in part_keys
        and (value := cache.lookup(key, count=False)) is not None
    }
    if held:
        graph, keys = {**raw, **held}, raw_keys
    else:
        graph, keys = _optimized_graph(collections, (raw, raw_keys))
    if reread:
        for block_keys in keys:
            for key in block_keys:
                cache.scopes.setdefault(key, fit_only)
    cache.mark_needed()
    return graph, keys, cache


def _check_graph(
    graph: dict, keys: dict[str, list[Hashable]], n_blocks: int, inputs: dict
) -> None:
    """Raise if dask's graph does not give each input exactly X's blocks.

    Everything after make_blocks takes block i of every input; a graph that
    disagrees with what its collection reports must stop here, named, not
    as an IndexError, a KeyError or a misalignment later.
    """
    for name, block_keys in keys.items():
        if len(block_keys) != n_blocks:
            raise RuntimeError(
                f"dask's graph of {name} ({describe_type(inputs[name])}) has "
                f"{len(block_keys)} blocks where X has {n_blocks}: dask changed "
                f"its partitions while building the graph, so the rows of {name} "
                "cannot be paired with X's; compute it into memory first"
            )
        missing = next((i for i, k in enumerate(block_keys) if k not in graph), None)
        # On a cluster, the blocks of a persisted collection are held there.
        if missing is not None and _dask_compat.current_client() is None:
            raise RuntimeError(
                f"dask's graph of {name} has no task for its block {missing} of "
                f"{n_blocks}, so it cannot be computed (dask loses blocks when "
                "some columns of a parquet frame are persisted, dask/dask#12488); "
                "do not persist it, or persist the whole frame before selecting "
                "columns"
            )


def _nbytes(X: Any) -> float:
    """Bytes of X when known without computing (dask arrays, NumPy), else NaN."""
    if is_dask_array(X) or isinstance(X, np.ndarray):
        return float(X.nbytes)
    return math.nan


def check_block_rows(block: dict[str, Any], where: str | Callable[[], str]) -> None:
    """Raise if the parts of one block do not have the same number of rows.

    ``where`` names the block; a callable is only called to raise, which keeps
    the per-block check free of string formatting.
    """
    n = num_rows(block["X"])
    for name, value in block.items():
        if name != "X" and num_rows(value) != n:
            where = where() if callable(where) else where
            raise ValueError(
                f"{where}: X has {n} rows but {name} has {num_rows(value)}; "
                f"X and {name} must have one entry per row"
            )
    X, y = block["X"], block.get("y")
    if hasattr(X, "iloc") and hasattr(y, "iloc") and not X.index.equals(y.index):
        warnings.warn(_OTHER_INDEX, IndexMismatchWarning, stacklevel=2)


class IndexMismatchWarning(UserWarning):
    """A block of X and its block of y are pandas objects with other indexes."""


# One text for every block, so Python shows it once rather than per block.
_OTHER_INDEX = (
    "X and y have different indexes in some blocks: their rows are paired by "
    "position, as scikit-learn pairs them, not by index. If y was read apart "
    "from X (another read_parquet or reader, which may order files otherwise), "
    "its rows may not be X's: take X and y from one DataFrame. Give y as an "
    "array (y.to_dask_array()) to pair by position without this warning."
)


# A batch is a list of pieces: (block index, rows of that block or None for all).
Batch = list[tuple[int, "slice | None"]]


def concat_rows(parts: list[Any]) -> Any:
    """Stack in-memory blocks of one kind (NumPy, scipy.sparse, pandas, list)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if sp.issparse(first):
        return sp.vstack(parts, format=first.format)
    if hasattr(first, "iloc"):
        import pandas as pd

        return pd.concat(parts)
    if isinstance(first, list):
        return [row for part in parts for row in part]
    return np.concatenate(parts)


def cut_batch(batch: Batch, computed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The rows of one batch, from its computed blocks (``block -> parts``)."""
    if len(batch) == 1 and batch[0][1] is None:
        return computed[batch[0][0]]
    names = computed[batch[0][0]].keys()
    return {
        name: concat_rows(
            [take_rows(computed[b][name], s.start, s.stop) for b, s in batch]
        )
        for name in names
    }


def blocks_of(batches: Sequence[Batch]) -> list[int]:
    """The blocks that ``batches`` take rows from, each once, in order."""
    return list(dict.fromkeys(b for batch in batches for b, _ in batch))


def assemble_batches(
    blocks: Blocks, batches: Sequence[Batch], get: Callable | None = None
) -> list[dict[str, Any]]:
    """Compute the blocks that ``batches`` need (each once) and cut the batches."""
    needed = blocks_of(batches)
    computed = dict(zip(needed, blocks.compute(needed, get)))
    return [cut_batch(batch, computed) for batch in batches]


def describe_batch(blocks: Blocks, batch: Batch) -> str:
    """Human words for a batch: its block, or its pieces of blocks."""
    if len(batch) == 1 and batch[0][1] is None:
        return blocks.describe(batch[0][0])
    pieces = ", ".join(f"block {b} rows {s.start}:{s.stop}" for b, s in batch)
    return f"the batch of {pieces}"
