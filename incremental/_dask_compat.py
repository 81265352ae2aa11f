"""Every use of dask internals, each behind one named function with a fallback.

dask moves its internals between releases. Each function here uses one,
guarded: when it is missing (an ImportError or AttributeError), a path
through dask's public API gives the same result, possibly slower. So a dask
release that moves an internal costs speed, never correctness. The tests run
every fallback by setting :data:`FORCE_FALLBACK` (``tests/test_dask_compat.py``).

What is here, and what it buys:

- :func:`lowered_graph`: one graph for several collections, lowered as
  ``dask.compute`` lowers it (``collections_to_expr(...).lower_completely()``);
  the fallback merges each collection's own ``__dask_graph__()``.
- :func:`graph_data`: the block a graph entry holds as data (``DataNode``),
  so it need not go through a scheduler; the fallback says "compute it".
- :func:`reroute_reads`: a block read from a stored array (a ``getter``
  task of ``da.from_zarr``) done by our reader instead (``_zarr_reads``),
  found with ``_is_getter_task`` and rebuilt as a ``Task``; the fallback
  leaves dask's read. :func:`reroute_array_reads` does the same to the
  reading layers of a dask array's ``HighLevelGraph`` (its own, and those
  that read stored values alone, under a slice or a rechunk), for the
  post-fit methods' lazy outputs; the fallback is the array as it is.
- :func:`slices_to_merge`: whether a getter reads another getter's result
  (``_is_getter_task``), the one case where dask's low-level fusion saves
  reading; the fallback says yes, so dask fuses as usual.
- :func:`suspended_progress_bars`: take the active ``ProgressBar``\\ s out of
  ``Callback.active`` while a fit runs, so they draw one bar per epoch; the
  fallback leaves them alone (one bar per scheduler call).
- :func:`reported_partitions`: dask's partition tuning off (the config key
  ``optimization.tune.active``, dask >= 2025.12), so that a DataFrame is
  computed in exactly the partitions its ``npartitions`` reports; the
  fallback (an older dask) leaves tuning on, and callers check the counts.
- :func:`with_callbacks_given`: a local scheduler's ``get`` that is handed
  the callbacks active now (``Callback.active``), so that calls from several
  threads at once do not lose the user's ``Profiler``; the fallback is
  ``get`` as it is.
- :func:`current_client`: the dask.distributed ``Client`` that dask computes
  with now, from the public ``distributed.default_client``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import dask
from dask.core import flatten

logger = logging.getLogger("incremental")

#: Set to True (tests do) to take every fallback path below.
FORCE_FALLBACK = False


class _Fallback(Exception):
    """Raised inside this module to take a function's public fallback."""


def _internal(module: str, name: str) -> Any:
    """``module.name``, or :class:`_Fallback` when it is gone (or forced off)."""
    if FORCE_FALLBACK:
        raise _Fallback(name)
    try:
        imported = __import__(module, fromlist=[name])
        return getattr(imported, name)
    except (ImportError, AttributeError) as error:
        raise _Fallback(name) from error


# -- graphs -------------------------------------------------------------------
GraphAndKeys = tuple[dict, list[list[Hashable]]]


def lowered_graph(collections: Sequence[Any], optimize: bool) -> GraphAndKeys:
    """One graph for ``collections`` and each one's keys, in block order.

    Lowered completely, as ``dask.compute`` does, so that expressions (a
    DataFrame repartition, say) become tasks. ``optimize=False`` skips dask's
    graph optimisation (culling, fusion), which costs about 15 us per task.
    Lowering never tunes partitions (see :func:`reported_partitions`), so a
    DataFrame gets one key per partition it reports.
    """
    try:
        to_expr = _internal("dask.base", "collections_to_expr")
        expr = to_expr(list(collections), optimize_graph=optimize)
        # Lowering does not tune today; should a dask release start to (as
        # array expressions would), the partitions must still be the reported ones.
        with reported_partitions():
            expr = expr.lower_completely()
        keys = [list(flatten(k)) for k in expr.__dask_keys__()]
        return dict(expr.__dask_graph__()), keys
    except _Fallback:
        pass
    # Each collection's own graph and keys. (Not ``dask.optimize``: for
    # DataFrames in dask 2026 its collections' keys name other tasks than
    # their graph computes.) A key two graphs share means the same task.
    graph: dict = {}
    for collection in collections:
        graph.update(collection.__dask_graph__())
    return graph, [list(flatten(c.__dask_keys__())) for c in collections]


def graph_data(entry: Any) -> Any:
    """The array a graph entry holds as data, or None if it must be computed.

    ``da.from_array`` on a NumPy array puts the blocks themselves in the
    graph; a scheduler call would only hand them back. Only objects with a
    ``shape`` and ``ndim`` count as data: anything else may be a task or a key.
    """
    try:
        data_node = _internal("dask._task_spec", "DataNode")
        graph_node = _internal("dask._task_spec", "GraphNode")
    except _Fallback:
        return None
    if isinstance(entry, data_node):
        entry = entry.value
    elif isinstance(entry, graph_node):
        return None
    if hasattr(entry, "shape") and hasattr(entry, "ndim"):
        return entry
    return None


def slices_to_merge(graph: dict) -> bool:
    """Whether a getter task reads from another getter task's result.

    dask's optimisation merges such pairs into one read (``x[5:][2:6]``
    becomes ``x[7:11]``), but only when it fuses tasks.
    """
    try:
        is_getter = _internal("dask.array.optimization", "_is_getter_task")
    except _Fallback:
        return True  # cannot tell: let dask fuse, as it would by default
    for node in graph.values():
        task = is_getter(node)
        source = getattr(task[1], "key", None) if task else None
        if source is not None and is_getter(graph.get(source)):
            return True
    return False


def reroute_reads(
    graph: dict, plan_for: Callable[[Any], Any], reader: Callable[..., Any]
) -> dict:
    """``graph`` with the reads of stored arrays that ``plan_for`` accepts
    done by ``reader``.

    A read is a task of dask's ``getter`` (``da.from_array``,
    ``da.from_zarr``) on an array held in the graph, with no lock: on its
    own, or inside a task that runs a fused subgraph (a ``map_blocks`` over
    the read). For each such array, ``plan_for(array)`` gives a plan or
    None (leave its reads alone); an accepted read becomes ``reader(array,
    selection, plan)`` under the same key. The fallback leaves the graph as
    it is.
    """
    try:
        is_getter = _internal("dask.array.optimization", "_is_getter_task")
        getter = _internal("dask.array.core", "getter")
        task = _internal("dask._task_spec", "Task")
        task_ref = _internal("dask._task_spec", "TaskRef")
        data_node = _internal("dask._task_spec", "DataNode")
        execute_subgraph = _internal("dask._task_spec", "_execute_subgraph")
    except _Fallback:
        return graph
    plans: dict[int, Any] = {}

    def plan_of(source: Any, bound: dict) -> Any:
        if isinstance(source, task_ref) and source.key in bound:
            source = bound[source.key]  # a fused subgraph's input
        held = graph.get(source.key) if isinstance(source, task_ref) else source
        array = held.value if isinstance(held, data_node) else held
        if id(array) not in plans:
            plans[id(array)] = plan_for(array)
        return plans[id(array)]

    def rerouted(key: Any, node: Any, bound: dict) -> Any:
        found = is_getter(node)
        if not found:
            return None
        func, source, selection, asarray, lock = found
        if func is not getter or not asarray or lock:
            return None
        plan = plan_of(source, bound)
        return None if plan is None else task(key, reader, source, selection, plan)

    changed = {}
    for key, node in graph.items():
        if isinstance(node, task) and node.func is execute_subgraph:
            inner, outkey, inkeys, *inputs = node.args
            bound = dict(zip(inkeys, inputs))
            new = {k: t for k, v in inner.items() if (t := rerouted(k, v, bound))}
            if new:
                changed[key] = task(
                    key,
                    execute_subgraph,
                    {**inner, **new},
                    outkey,
                    inkeys,
                    *inputs,
                    _data_producer=node.data_producer,
                )
        elif (new_node := rerouted(key, node, {})) is not None:
            changed[key] = new_node
    return {**graph, **changed} if changed else graph


def reroute_array_reads(
    X: Any, plan_for: Callable[[Any], Any], reader: Callable[..., Any]
) -> Any:
    """The dask array ``X`` with the reads in its graph rerouted as in
    :func:`reroute_reads`: same name, keys, chunks and layers (so the block
    cache finds the same blocks), ``X`` itself when nothing changes.

    The layers looked at are ``X``'s own and every layer that reads from
    stored values alone (``da.from_zarr``'s, under a slice or a rechunk of
    it): its tasks, and those of the one-value layers it reads from, are
    materialized and rerouted. Other layers are left as they are, unbuilt.
    A layer whose reads change becomes a ``MaterializedLayer``, so dask no
    longer merges a slice into its reads: each block reads its whole
    chunks, then is sliced (zarr decompresses whole chunks too). The
    fallback, for a graph that is not a ``HighLevelGraph`` of layers, is
    ``X``.
    """
    try:
        high_level_graph = _internal("dask.highlevelgraph", "HighLevelGraph")
        materialized = _internal("dask.highlevelgraph", "MaterializedLayer")
        graph = X.__dask_graph__()
        if not isinstance(graph, high_level_graph) or X.name not in graph.layers:
            raise _Fallback("HighLevelGraph")
    except _Fallback:
        return X
    new_layers = {}
    for name in _reading_layers(graph, X.name, materialized):
        own = dict(graph.layers[name])
        below: dict = {}
        for source in graph.dependencies.get(name, ()):
            below.update(graph.layers[source])
        rerouted = reroute_reads({**below, **own}, plan_for, reader)
        changed = {key: rerouted[key] for key in own if rerouted[key] is not own[key]}
        if changed:
            new_layers[name] = materialized({**own, **changed})
    if not new_layers:
        return X
    import dask.array as da

    return da.Array(
        high_level_graph({**graph.layers, **new_layers}, dict(graph.dependencies)),
        X.name,
        X.chunks,
        meta=X._meta,
    )


def _reading_layers(graph: Any, own: str, materialized: type) -> list[str]:
    """``own``, and the layers of ``graph`` whose inputs are all one-value
    layers of their own (``original-<name>``, holding the stored array that
    ``da.from_array`` and ``da.from_zarr`` read from). Only materialized
    layers are measured: other layers build their tasks to count them."""

    def holds_one_value(name: str) -> bool:
        layer = graph.layers[name]
        return (
            not graph.dependencies.get(name)
            and isinstance(layer, materialized)
            and len(layer) == 1
        )

    found = [own]
    for name, sources in graph.dependencies.items():
        if name != own and sources and all(map(holds_one_value, sources)):
            found.append(name)
    return found


@contextlib.contextmanager
def low_level_fusion_off() -> Iterator[None]:
    """dask's low-level task fusion off, unless the user configured it."""
    if dask.config.get("optimization.fuse.active", None) is None:
        with dask.config.set({"optimization.fuse.active": False}):
            yield
    else:
        yield


#: dask's switch for its partition tuning (dask/dask#12194, dask 2025.12).
TUNE_KEY = "optimization.tune.active"


@contextlib.contextmanager
def reported_partitions() -> Iterator[bool]:
    """dask's partition tuning off meanwhile; yields whether it could be.

    When a query reads some columns of a parquet dataset, dask's optimiser
    ("tune") reads several files per partition, so ``df["y"]`` computes 6
    partitions of a frame whose ``npartitions`` says 40, and a frame turned
    into an array (which dask optimises when the array is made) has fewer
    blocks than partitions. With tuning off every view of a frame has the
    partitions it reports. Hold this around making an array from a frame and
    around computing anything per partition; it is process-wide, like every
    ``dask.config.set``, so hold it only while building graphs or counting.

    The fallback, on a dask without the switch, leaves tuning on and yields
    False: blocks may then differ from partitions, and callers must count
    them rather than assume them.

    Examples
    --------
    >>> import dask
    >>> with reported_partitions() as off:
    ...     print(off, dask.config.get(TUNE_KEY))
    True False
    """
    if FORCE_FALLBACK or dask.config.get(TUNE_KEY, None) is None:
        yield False
        return
    with dask.config.set({TUNE_KEY: False}):
        yield True


# -- diagnostics --------------------------------------------------------------
@contextlib.contextmanager
def suspended_progress_bars() -> Iterator[list[Any]]:
    """The active ``ProgressBar``\\ s, taken out of dask's callbacks meanwhile.

    Yields the bars (an empty list when there are none or dask's callbacks
    cannot be read); they are put back on exit. The caller drives them
    through the ``Callback`` protocol (``_start``, ``_pretask``, ``_finish``).
    """
    try:
        if FORCE_FALLBACK:
            raise _Fallback("Callback.active")
        from dask.callbacks import Callback
        from dask.diagnostics import ProgressBar

        entries = [
            entry
            for entry in list(Callback.active)
            if isinstance(_owner(entry), ProgressBar)
        ]
        Callback.active.difference_update(entries)
    except (_Fallback, ImportError, AttributeError, TypeError):
        yield []
        return
    try:
        yield [_owner(entry) for entry in entries]
    finally:
        Callback.active.update(entries)


#: Modules of dask's local schedulers, whose ``get`` takes ``callbacks=``.
_LOCAL_SCHEDULERS = frozenset({"dask.threaded", "dask.local", "dask.multiprocessing"})


class _SharedCallbacks:
    """dask callbacks shared by scheduler calls from several threads at once.

    Calls that overlap look to the callbacks like one computation: each
    call's start and tasks are passed on as they come, one at a time, and
    ``finish`` once, when the last overlapping call ends. (dask's
    ``Profiler`` collects and clears its records in ``finish``: called while
    another call still runs, it drops that call's tasks mid-flight.)
    """

    def __init__(self, entries: Sequence[tuple]):
        self.entries = tuple(entries)
        self.lock = threading.Lock()
        self.running = 0
        self.failed = False

    def _each(self, slot: int, *args: Any) -> None:
        for entry in self.entries:
            if entry[slot]:
                entry[slot](*args)

    def start(self, dsk) -> None:
        with self.lock:
            self.running += 1
            self._each(0, dsk)

    def start_state(self, dsk, state) -> None:
        with self.lock:
            self._each(1, dsk, state)

    def pretask(self, key, dsk, state) -> None:
        with self.lock:
            self._each(2, key, dsk, state)

    def posttask(self, key, result, dsk, state, worker_id) -> None:
        with self.lock:
            self._each(3, key, result, dsk, state, worker_id)

    def finish(self, dsk, state, failed) -> None:
        with self.lock:
            self.running -= 1
            self.failed = self.failed or failed
            if self.running == 0:
                self._each(4, dsk, state, self.failed)
                self.failed = False

    def entry(self) -> tuple:
        return (self.start, self.start_state, self.pretask, self.posttask, self.finish)


def with_callbacks_given(get: Any) -> Any:
    """``get`` with the callbacks active now (a ``Profiler``, say) given to it.

    Call it in the thread that starts a fit; the stream's readers then call
    the result from several threads at once. dask's local schedulers take
    the global ``Callback.active`` away for the length of a call and put it
    back at the end: calls from two threads interleave that, one puts back
    the set the other emptied, and the user's ``Profiler`` sees nothing more
    for the rest of the session. Given its callbacks (shared, see
    :class:`_SharedCallbacks`), a call leaves the global alone. The fallback
    is ``get`` as it is.
    """
    if getattr(get, "__module__", None) not in _LOCAL_SCHEDULERS:
        return get  # a Client's get, or the user's own
    try:
        if FORCE_FALLBACK:
            raise _Fallback("Callback.active")
        from dask.callbacks import Callback

        active = tuple(Callback.active)
    except (_Fallback, ImportError, AttributeError, TypeError):
        return get
    callbacks = (_SharedCallbacks(active).entry(),) if active else ()
    return functools.partial(get, callbacks=callbacks)


def _owner(entry: Any) -> Any:
    """The object whose bound methods make up a callback entry, if any."""
    return next((getattr(f, "__self__", None) for f in entry if f), None)


# -- dask.distributed -----------------------------------------------------------
def current_client() -> Any:
    """The dask.distributed Client that dask computes with now, if any.

    A Client that exists while ``dask.config.set(scheduler=...)`` names
    another scheduler is not the one dask computes with.
    """
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:  # no Client
        return None
    return client if dask.base.get_scheduler() == client.get else None
