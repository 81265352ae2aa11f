"""Computed blocks kept in memory, within a budget, for the next reader.

The blocks a fit computes (X's, y's, per-sample parameters') are kept here
so that what reads them again reads no storage: the later epochs of the
fit, the next stage of a scikit-learn ``Pipeline`` (whose input is a lazy
transform of this stage's input, so its graph holds the same blocks), and a
repeated fit on the same data (a search over ``alpha``).

Why not dask's opportunistic cache (``dask.cache.Cache``, on cachey): it is
global and loses entries when two threads compute at once (our readers do),
it does nothing on a cluster, graph optimisation fuses the next stage's
reads away from the keys it holds, it keys by task name alone (a zarr array
rewritten in place keeps its name, so it would serve old data), and its
cost-based eviction keeps a random part of a scan larger than the budget.

What this cache does instead:

- An entry is keyed by its dask key *and the source layers of its graph*:
  the root layers of the collection's ``HighLevelGraph`` (the ones that
  read storage or hold in-memory data), held by weak reference. Collections
  derived from the same source (a slice, a ``map_blocks``, the fancy
  indexing of a scikit-learn search rebuilt for each candidate) share those
  layer objects, so a pipeline's next stage and a repeated fit on the same
  data find the blocks; a collection made anew (``da.from_zarr`` again after
  the data changed) has new source layers and finds nothing. Entries go
  when a source layer does. Keys with no such layers (dask DataFrames) are
  kept for the one fit that made them (its epochs).
- Only arrays that own their memory are kept (a view could alias data the
  user changes), and they are made read-only, so no ``partial_fit`` can
  change a kept block: scikit-learn copies read-only input it must write.
- Admission: a block is kept if it fits the budget, making room by
  dropping the least recently used blocks that no running fit needs;
  otherwise it is not kept. A scan larger than the budget therefore keeps
  its first blocks and reads the rest, each epoch ("cache what fits").
- The budget (``Incremental(cache=...)``) defaults to half the memory
  available when the fit starts (counting what the cache already holds).
- Keeping costs too, and what it saves depends on the data. Measured on
  this machine (a virtual machine whose free memory goes back to the host,
  so each new GB held costs about 1.2 s of the kernel's time): the
  reference pipeline on 20M x 20 of uncompressed zarr took 14.9 s when the
  scaler's blocks were kept for the next stage against 10.2 s when they
  were read again (from the page cache), and on zstd zarr 15.5 s against
  15.1 s (medians of 3). Four epochs over 10M rows of zstd zarr gain: 13.0
  s with the blocks kept, 14.9 to 16.1 s for dask-ml, which reads them
  four times. So by default (``cache="auto"``) a fit
  keeps what it reads only for its own later epochs; a budget given as a
  number of bytes also keeps the blocks for whatever reads them after
  the fit: a pipeline's next stage (whose input is a lazy transform of the
  same blocks), a repeated fit on the same data (a search over ``alpha``).
  What is kept already is found in every case.
- A wrapper's own lazy output (the transform a pipeline's next stage fits
  on) is read again only by the later epochs of that fit: its blocks are
  kept for that fit only, and not at all by a fit of one epoch.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from dask.utils import parse_bytes

#: Share of the memory available at the start of a fit that "auto" allows.
AUTO_SHARE = 0.5


def nbytes_of(value: Any) -> int | None:
    """Bytes a block holds, or None when it is not a kind that is kept."""
    if isinstance(value, np.ndarray):
        return value.nbytes if value.flags.owndata else None
    if sp.issparse(value):
        parts = [getattr(value, name, None) for name in ("data", "indices", "indptr")]
        arrays = [p for p in parts if isinstance(p, np.ndarray)]
        if not arrays or not all(a.flags.owndata for a in arrays):
            return None
        return sum(a.nbytes for a in arrays)
    if hasattr(value, "memory_usage") and hasattr(value, "iloc"):
        usage = value.memory_usage(deep=False)  # pandas: copy-on-write protects
        return int(usage.sum() if hasattr(usage, "sum") else usage)
    return None


def _freeze(value: Any) -> None:
    """Make a kept block read-only, so no one can change it in place."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif sp.issparse(value):
        for name in ("data", "indices", "indptr"):
            part = getattr(value, name, None)
            if isinstance(part, np.ndarray):
                part.flags.writeable = False


def available_memory() -> int | None:
    """Bytes of memory available to new allocations, if known."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    return int(psutil.virtual_memory().available)


def resolve_budget(cache: Any, held: int) -> int:
    """Bytes the cache may hold during a fit, from ``Incremental(cache=...)``.

    >>> resolve_budget(False, 0), resolve_budget(2_000, 0), resolve_budget("1kB", 0)
    (0, 2000, 1000)
    """
    if cache is False or cache is None:
        return 0
    if cache == "auto":
        available = available_memory()
        return 0 if available is None else int(AUTO_SHARE * (available + held))
    if isinstance(cache, str):
        return int(parse_bytes(cache))
    return int(cache)


@dataclass
class _Entry:
    value: Any
    nbytes: int


@dataclass
class CacheStats:
    """What the cache holds and how it served: for ``cache_info()``."""

    entries: int = 0
    nbytes: int = 0
    budget: int = 0
    hits: int = 0
    misses: int = 0
    stored: int = 0
    refused: int = 0


@dataclass
class _Fit:
    """What one running fit needs: its budget and the keys it reads."""

    budget: int
    needed: set = field(default_factory=set)


Scope = tuple  # the objects whose identity (and life) an entry depends on


class FitScope:
    """The scope of blocks kept for one fit only (its later epochs)."""


class BlockCache:
    """The process's cache of computed blocks (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: OrderedDict[tuple[tuple[int, ...], Hashable], _Entry] = (
            OrderedDict()
        )
        self._watched: dict[int, Any] = {}  # id(source) -> weakref.finalize
        self._fits: list[_Fit] = []
        self.stats = CacheStats()

    # -- scopes ------------------------------------------------------------
    def _ids(self, scope: Scope, watch: bool) -> tuple[int, ...] | None:
        """The ids of a scope's objects; None if one is not watched (so
        nothing can be kept under it). ``watch`` starts watching them."""
        ids = tuple(sorted(id(source) for source in scope))
        for source, ident in zip(scope, map(id, scope)):
            if ident in self._watched:
                continue
            if not watch:
                return None
            self._watched[ident] = weakref.finalize(source, self._forget, ident)
        return ids

    def _forget(self, ident: int) -> None:
        """A source object died: drop every entry that depends on it."""
        with self._lock:
            self._watched.pop(ident, None)
            for entry_key in [k for k in self._entries if ident in k[0]]:
                self._remove(entry_key)

    def _remove(self, entry_key: tuple[tuple[int, ...], Hashable]) -> None:
        entry = self._entries.pop(entry_key)
        self.stats.nbytes -= entry.nbytes
        self.stats.entries -= 1

    # -- fits --------------------------------------------------------------
    def open_fit(self, budget: int) -> _Fit:
        """Register a running fit; its needed keys are never dropped for room."""
        with self._lock:
            fit = _Fit(budget)
            self._fits.append(fit)
            self.stats.budget = budget
            return fit

    def close_fit(self, fit: _Fit) -> None:
        with self._lock:
            if fit in self._fits:
                self._fits.remove(fit)

    def mark_needed(self, fit: _Fit, scoped_keys: Iterable[tuple[Scope, Hashable]]):
        """Keys ``fit`` reads: kept entries among them are not dropped for room."""
        with self._lock:
            for scope, key in scoped_keys:
                ids = self._ids(scope, watch=False)
                if ids is not None:
                    fit.needed.add((ids, key))

    @property
    def held(self) -> int:
        return self.stats.nbytes

    # -- entries -----------------------------------------------------------
    def lookup(self, scope: Scope, key: Hashable, count: bool = True) -> Any:
        """The kept value of ``key`` under ``scope``, or None."""
        with self._lock:
            ids = self._ids(scope, watch=False)
            entry = None if ids is None else self._entries.get((ids, key))
            if count:
                self.stats.hits += entry is not None
                self.stats.misses += entry is None
            if entry is None:
                return None
            self._entries.move_to_end((ids, key))
            return entry.value

    def store(self, fit: _Fit, scope: Scope, key: Hashable, value: Any) -> bool:
        """Keep ``value`` if it fits ``fit``'s budget; True if kept."""
        size = nbytes_of(value)
        if size is None or size > fit.budget:
            return False
        with self._lock:
            ids = self._ids(scope, watch=True)
            if (ids, key) in self._entries:
                return True
            if not self._make_room(size, fit.budget):
                self.stats.refused += 1
                return False
            _freeze(value)
            self._entries[(ids, key)] = _Entry(value, size)
            fit.needed.add((ids, key))
            self.stats.nbytes += size
            self.stats.entries += 1
            self.stats.stored += 1
            return True

    def _make_room(self, size: int, budget: int) -> bool:
        """Drop least recently used entries no running fit needs, until
        ``size`` more bytes fit ``budget``; False if they cannot."""
        excess = self.stats.nbytes + size - budget
        if excess <= 0:
            return True
        needed = set().union(*(f.needed for f in self._fits))
        victims, freed = [], 0
        for entry_key, entry in self._entries.items():  # oldest first
            if freed >= excess:
                break
            if entry_key not in needed:
                victims.append(entry_key)
                freed += entry.nbytes
        if freed < excess:
            return False
        for entry_key in victims:
            self._remove(entry_key)
        return True

    def clear(self) -> None:
        with self._lock:
            for entry_key in list(self._entries):
                self._remove(entry_key)

    def info(self) -> dict[str, int]:
        with self._lock:
            return dict(vars(self.stats))


#: The one cache of this process.
CACHE = BlockCache()

#: Ids of the graph layers whose blocks are a wrapper's own lazy output (a
#: pipeline's next stage fits on them): kept only for the later epochs of
#: one fit. (Layers are mappings, so not hashable: ids, dropped at death.)
_TRANSIENT: set[int] = set()


def mark_transient(collection: Any) -> None:
    """Say that ``collection``'s blocks will not be read again after the fit
    that reads them (but by its own later epochs)."""
    graph = getattr(collection, "dask", None)
    layer = getattr(graph, "layers", {}).get(getattr(collection, "name", None))
    if layer is not None and id(layer) not in _TRANSIENT:
        _TRANSIENT.add(id(layer))
        weakref.finalize(layer, _TRANSIENT.discard, id(layer))


def is_transient(layer: Any) -> bool:
    return id(layer) in _TRANSIENT


def clear_cache() -> None:
    """Drop every block kept by :mod:`incremental`'s block cache.

    Kept blocks also go when the dask collection that made them is deleted.

    Examples
    --------
    >>> import incremental
    >>> incremental.clear_cache()
    >>> incremental.cache_info()["entries"]
    0
    """
    CACHE.clear()


def cache_info() -> dict[str, int]:
    """What the block cache holds and how it has served.

    Returns
    -------
    dict
        ``entries`` and ``nbytes`` kept now; ``budget`` of the last fit;
        ``hits`` and ``misses`` of look-ups; ``stored`` blocks and blocks
        ``refused`` for lack of room, since the process started.
    """
    return CACHE.info()


class FitCache:
    """One fit's view of the cache: which keys it may find and keep.

    ``scopes`` maps each graph key the fit may find or keep to its scope
    (the source objects its value depends on).
    """

    def __init__(
        self, cache: BlockCache, budget: int, scopes: Mapping, store: bool = True
    ):
        self.cache = cache
        self.scopes = dict(scopes)
        self.store_new = store  # False: only find what is kept already
        self.fit = cache.open_fit(budget)
        self.mark_needed()

    def mark_needed(self) -> None:
        """Protect every kept block this fit may read from being dropped."""
        self.cache.mark_needed(self.fit, ((s, k) for k, s in self.scopes.items()))

    def lookup(self, key: Hashable, count: bool = True) -> Any:
        scope = self.scopes.get(key)
        return None if scope is None else self.cache.lookup(scope, key, count)

    def store(self, values: Mapping[Hashable, Any]) -> None:
        if not self.store_new:
            return
        for key, value in values.items():
            scope = self.scopes.get(key)
            if scope is not None:
                self.cache.store(self.fit, scope, key, value)

    def close(self) -> None:
        self.cache.close_fit(self.fit)
