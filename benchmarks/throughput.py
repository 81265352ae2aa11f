"""Throughput on real storage: raw and zstd-compressed zarr, against the limit.

On compressed data, producing a block (decompressing it) costs about as much
CPU as fitting it, so every row here says, besides ours, the plain loop and
dask-ml, the *limit*: the least time the work can take on this machine, the
total CPU seconds it needs spread over every core, or the serial chain of
``partial_fit`` calls, whichever is larger. CPU seconds of reading come from
reading every block once in parallel; those of fitting from the plain loop's
``partial_fit`` calls (one thread each).

The block cache is cleared before each run of ours, so that repeats are
alike; each dataset's files are read once before its row (page cache).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import mean, median
from typing import Any, NamedTuple

import numpy as np
from sklearn.linear_model import SGDClassifier

import incremental
from incremental.demo import load_dataset

from ._common import (
    CLASSES,
    Row,
    Settings,
    cpu_timed,
    dask_ml_wrappers,
    exactness,
    in_fresh_process,
    limit_seconds,
    median_times,
    plain_fit,
    prepare_job,
    two_worker_client,
    warm_page_cache,
    with_peak_rss,
    zarr_dataset,
    zarr_row_blocks,
)
from .cases import _dask_ml, _library_pipeline, _load_all, _ours, _sgd, _size


def _codec(compressed: bool) -> str:
    return "zstd" if compressed else "raw"


class ReadCost(NamedTuple):
    """Wall and CPU seconds of reading every block once, in parallel: as
    ours reads them, and with dask's own tasks (zarr's reader)."""

    wall: float
    cpu: float
    dask_wall: float
    dask_cpu: float

    def describe(self) -> str:
        return (
            f"read in parallel in {self.wall:.2f} s; with dask's own tasks "
            f"(zarr's reader) {self.dask_cpu:.2f} CPU seconds in {self.dask_wall:.2f} s"
        )


def _read_cpu(X: Any, y: Any, repeats: int = 2) -> ReadCost:
    """What reading every block once costs, both ways, taking turns (medians).
    The limits take ours, the cheaper: the least the work can cost here."""
    runs: dict[str, list] = {"incremental": [], "dask": []}
    for _ in range(repeats):
        for by, done in runs.items():
            done.append(cpu_timed(lambda by=by: _load_all(X, y, by)))

    def typical(by: str, field: int) -> float:
        return float(np.median([r[field] for r in runs[by]]))

    return ReadCost(
        typical("incremental", 0),
        typical("incremental", 1),
        typical("dask", 0),
        typical("dask", 1),
    )


def _prepared(settings: Settings, rows: int, chunk: int, compressed: bool):
    folder = zarr_dataset(settings, rows, chunk, compressed=compressed)
    warm_page_cache(folder)
    X, y = load_dataset(folder)
    return folder, X, y


def _fresh(estimator: Any, **params: Any) -> Any:
    """Ours, with an empty block cache (so every repeat reads as the first)."""
    incremental.clear_cache()
    return incremental.Incremental(estimator, shuffle_blocks=False, **params)


# -- 1. one pass of SGDClassifier -------------------------------------------------
class _ChainTimedSGD(SGDClassifier):
    """``_sgd()``, keeping the start and end of each of its own ``partial_fit``
    calls in ``calls_``: the serial chain as it ran inside a fit."""

    def partial_fit(self, X, y=None, **params):
        start = time.perf_counter()
        try:
            return super().partial_fit(X, y, **params)
        finally:
            self.calls_ = [*getattr(self, "calls_", []), (start, time.perf_counter())]


def _chain_timed_sgd() -> Any:
    return _ChainTimedSGD(**_sgd().get_params())


def _storage_read_bytes() -> int | None:
    """Bytes this process has had read from storage (not the page cache) so
    far; None where the system does not say."""
    import psutil

    try:
        return psutil.Process().io_counters().read_bytes
    except (AttributeError, psutil.Error):
        return None


class _Traced(NamedTuple):
    """One fit of ours with ``_ChainTimedSGD``: where its seconds went."""

    model: Any
    started: float
    storage_bytes: int | None

    @property
    def calls(self) -> list[tuple[float, float]]:
        return self.model.estimator_.calls_

    @property
    def chain(self) -> float:
        """Seconds inside its ``partial_fit`` calls."""
        return sum(end - start for start, end in self.calls)

    @property
    def first_wait(self) -> float:
        """Seconds from the start of ``fit`` to the first ``partial_fit``:
        the first block's read, which no schedule can overlap."""
        return self.calls[0][0] - self.started

    @property
    def later_waits(self) -> float:
        """Seconds between ``partial_fit`` calls: waits for blocks, hand-offs."""
        return sum(b[0] - a[1] for a, b in zip(self.calls, self.calls[1:]))


def _traced_fit(X: Any, y: Any) -> _Traced:
    before = _storage_read_bytes()
    started = time.perf_counter()
    model = _fresh(_chain_timed_sgd()).fit(X, y, classes=CLASSES)
    after = _storage_read_bytes()
    read = None if before is None or after is None else after - before
    return _Traced(model, started, read)


def _fitting_beside_reads(
    folder: Path, held_blocks: int, repeats: int
) -> tuple[float, float]:
    """How much slower ``partial_fit`` calls run while the other core reads
    blocks as ours reads them: the serial chain over the first
    ``held_blocks`` blocks (in memory), alone and beside one reader of the
    other blocks at the readers' priority, taking turns. Returns the chain
    alone (median) and the ratio beside / alone (median by turn).

    The two threads share the machine's memory and caches; the limit
    assumes the calls run as fast beside the reads as alone. The reader's
    error, if any, is raised here."""
    import itertools
    import threading

    import zarr

    from incremental._stream import _yield_to_consumer
    from incremental._zarr_reads import chunk_files, read_block

    X = zarr.open_array(folder / "X.zarr", mode="r")
    step = X.chunks[0]
    held = list(zarr_row_blocks(folder, stop=held_blocks * step))
    files = chunk_files(X)
    others = range(held_blocks * step, X.shape[0] - step + 1, step)

    def chain() -> float:
        return plain_fit(_sgd(), held, classes=CLASSES)[1]

    def beside() -> float:
        stop, failed = threading.Event(), []

        def read() -> None:
            _yield_to_consumer()
            try:
                for start in itertools.cycle(others):
                    if stop.is_set():
                        return
                    read_block(X, (slice(start, start + step), slice(None)), files)
            except Exception as error:  # raised by the thread that timed
                failed.append(error)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            seconds = chain()
        finally:
            stop.set()
            reader.join()
        if failed:
            raise failed[0]
        return seconds

    alone, slowed = [], []
    for _ in range(repeats):
        alone.append(chain())
        slowed.append(beside())
    return median(alone), median(b / a for a, b in zip(alone, slowed))


def _over_the_chain(
    seconds: list[float], traces: list[_Traced], chains: list[float]
) -> str:
    """Where ours' seconds beyond each turn's serial chain went, averaged
    over the turns (averages add up, medians do not): the first block's
    read, the ``partial_fit`` calls running slower than alone (beside the
    reads on the other core), the waits between calls, and the rest (before
    the first read and after the last call); and what was read from
    storage during ours (pages the system had dropped from its cache)."""
    over = mean(s - chain for s, chain in zip(seconds, chains))
    first = mean(t.first_wait for t in traces)
    slower = mean(t.chain - chain for t, chain in zip(traces, chains))
    waits = mean(t.later_waits for t in traces)
    stored = [t.storage_bytes for t in traces if t.storage_bytes is not None]
    text = (
        f"ours beyond the serial chain, mean of the turns: {over:.2f} s = the "
        f"first block's read {first:.2f} s + partial_fit calls slower than "
        f"alone {slower:+.2f} s + waits between them {waits:.2f} s + the rest "
        f"{over - first - slower - waits:+.2f} s"
    )
    if stored:
        text += f"; read from storage during ours: median {median(stored) / 1e6:.0f} MB"
    return text


def one_pass(settings: Settings) -> list[Row]:
    """SGDClassifier, one pass over raw and zstd zarr: reads overlap fits."""
    rows_, chunk = settings.pick((2_000_000, 250_000), (20_000_000, 500_000))
    # ours and the limit differ by less than one run's noise here (on the
    # same machine ours / limit went 0.96x-1.11x from run to run): seven turns
    repeats = settings.pick(3, 7)
    out = []
    for compressed in (False, True):
        folder, X, y = _prepared(settings, rows_, chunk, compressed)
        read = _read_cpu(X, y)
        read_cpu = read.cpu
        runs = {
            "ours": lambda X=X, y=y: _traced_fit(X, y),
            "plain": lambda f=folder: plain_fit(
                _sgd(), zarr_row_blocks(f), classes=CLASSES
            ),
        }
        if dask_ml_wrappers() is not None:
            runs["dask_ml"] = lambda X=X, y=y: _dask_ml(_sgd()).fit(
                X, y, classes=CLASSES
            )
        t = median_times(runs, repeats)
        chains = [fitting for _, fitting in t["plain"].results]
        fit_serial = float(np.median(chains))
        limit = limit_seconds(read_cpu + fit_serial, fit_serial)
        # Turn by turn: ours against the limit of the same turn, and the
        # seconds of ours outside its own partial_fit calls (what the
        # library adds to the chain: the first block's read, hand-offs).
        paired = [
            seconds / limit_seconds(read_cpu + chain, chain)
            for seconds, chain in zip(t["ours"].seconds, chains)
        ]
        # The limit assumes the calls run as fast beside the reads as alone.
        held = min(settings.pick(4, 10), X.numblocks[0] // 2)
        alone, slowdown = _fitting_beside_reads(folder, held, repeats)
        share = min(1.0, read_cpu / fit_serial)
        first = median(trace.first_wait for trace in t["ours"].results)
        reachable = first + fit_serial * (1 + (slowdown - 1) * share)
        case = f"one pass, SGDClassifier, {_codec(compressed)} zarr"
        size = _size(rows_, X.numblocks[0])
        out += [
            Row(
                case,
                size,
                "reading alone, as ours reads: CPU seconds (wall in check)",
                plain=read_cpu,
                check=read.describe(),
            ),
            Row(
                case,
                size,
                "partial_fit calls alone",
                plain=fit_serial,
                check="the serial chain",
            ),
            Row(
                case,
                size,
                "partial_fit calls beside a reader on the other core / alone",
                plain=slowdown,
                unit="x",
                check=f"{held} blocks in memory ({alone:.2f} s alone), the "
                "reader reading the others as ours reads; median by turn of "
                f"{repeats} turns",
            ),
            Row(
                case,
                size,
                f"fit, median of {repeats}",
                t["ours"].median,
                t["plain"].median,
                t["dask_ml"].median if "dask_ml" in t else None,
                check=exactness(t["ours"].result.model, t["plain"].result[0])
                + f"; turn by turn, ours / that turn's limit: median "
                f"{median(paired):.2f}x ({min(paired):.2f}-{max(paired):.2f}x); "
                + _over_the_chain(t["ours"].seconds, t["ours"].results, chains)
                + f"; against the chain slowed {slowdown:.3f}x for the "
                f"{share:.0%} of it that reads overlap, plus the first block's "
                f"read ({reachable:.2f} s): ours {t['ours'].median / reachable:.2f}x",
                limit=limit,
            ),
        ]
    return out


# -- 2. several epochs --------------------------------------------------------------
def _plain_epochs(folder: Path, epochs: int) -> tuple[Any, float]:
    model, fitting = _sgd(), 0.0
    for _ in range(epochs):
        model, seconds = plain_fit(model, zarr_row_blocks(folder), classes=CLASSES)
        fitting += seconds
    return model, fitting


def _dask_ml_epochs(X: Any, y: Any, epochs: int) -> Any:
    model = _dask_ml(_sgd()).fit(X, y, classes=CLASSES)
    for _ in range(epochs - 1):
        model.partial_fit(X, y, classes=CLASSES)
    return model


def epochs(settings: Settings) -> list[Row]:
    """Four epochs over zstd zarr: the block cache spares epochs 2-4 reading."""
    rows_, chunk = settings.pick((1_000_000, 125_000), (10_000_000, 500_000))
    n_epochs, repeats = 4, 3
    folder, X, y = _prepared(settings, rows_, chunk, compressed=True)
    read_cpu = _read_cpu(X, y).cpu
    runs = {
        "ours": lambda: _fresh(_sgd(), max_epochs=n_epochs).fit(X, y, classes=CLASSES),
        "plain": lambda: _plain_epochs(folder, n_epochs),
    }
    if dask_ml_wrappers() is not None:
        runs["dask_ml"] = lambda: _dask_ml_epochs(X, y, n_epochs)
    t = median_times(runs, repeats)
    uncached = median_times(
        {
            "ours": lambda: _fresh(_sgd(), max_epochs=n_epochs, cache=False).fit(
                X, y, classes=CLASSES
            )
        },
        repeats,
    )
    fit_all = float(np.median([fitting for _, fitting in t["plain"].results]))
    fit_epoch = fit_all / n_epochs
    # With the cache, only the first epoch reads: then fitting alone.
    limit_cached = limit_seconds(read_cpu + fit_epoch, fit_epoch) + fit_all - fit_epoch
    limit_reading = limit_seconds(n_epochs * read_cpu + fit_all, fit_all)
    case = f"{n_epochs} epochs, SGDClassifier, zstd zarr"
    size = _size(rows_, X.numblocks[0])
    check = exactness(t["ours"].result, t["plain"].result[0])
    dask_ml = t["dask_ml"].median if "dask_ml" in t else None
    return [
        Row(
            case,
            size,
            f"fit, block cache on (default), median of {repeats}",
            t["ours"].median,
            t["plain"].median,
            dask_ml,
            check=check,
            limit=limit_cached,
        ),
        Row(
            case,
            size,
            f"fit, cache=False, median of {repeats}",
            uncached["ours"].median,
            t["plain"].median,
            dask_ml,
            check="every epoch reads and decompresses again",
            limit=limit_reading,
        ),
    ]


# -- 3. the scaler's pass ---------------------------------------------------------
def _max_relative_difference(a: Any, b: Any, names=("mean_", "var_")) -> float:
    worst = 0.0
    for name in names:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = np.maximum(np.abs(x), np.abs(y))
        scale[scale == 0] = 1.0
        worst = max(worst, float(np.max(np.abs(x - y) / scale)))
    return worst


def _dask_ml_scaler(X: Any) -> Any:
    from dask_ml.preprocessing import StandardScaler

    return StandardScaler().fit(X)


def scaler_pass(settings: Settings) -> list[Row]:
    """StandardScaler over raw and zstd zarr: batches fitted apart and merged."""
    from sklearn.preprocessing import StandardScaler

    rows_, chunk = settings.pick((2_000_000, 250_000), (20_000_000, 500_000))
    repeats, out = 3, []
    for compressed in (False, True):
        folder, X, y = _prepared(settings, rows_, chunk, compressed)
        read_cpu = _read_cpu(X, y).cpu
        runs = {
            "ours": lambda X=X: _fresh(StandardScaler()).fit(X),
            "serial": lambda X=X: _fresh(StandardScaler(), merge=False).fit(X),
            "plain": lambda f=folder: plain_fit(
                StandardScaler(), ((Xb, None) for Xb, _ in zarr_row_blocks(f))
            ),
        }
        if dask_ml_wrappers() is not None:
            runs["dask_ml"] = lambda X=X: _dask_ml_scaler(X)
        t = median_times(runs, repeats)
        fit_serial = float(np.median([fitting for _, fitting in t["plain"].results]))
        limit = limit_seconds(read_cpu + fit_serial, 0.0)  # batches fit apart
        plain_model = t["plain"].result[0]
        difference = _max_relative_difference(t["ours"].result.estimator_, plain_model)
        case = f"StandardScaler pass, {_codec(compressed)} zarr"
        size = _size(rows_, X.numblocks[0])
        dask_ml = t["dask_ml"].median if "dask_ml" in t else None
        out += [
            Row(
                case,
                size,
                f"fit, merged (default), median of {repeats}",
                t["ours"].median,
                t["plain"].median,
                dask_ml,
                limit=limit,
                check=f"mean_ and var_ within {difference:.1e} (relative) of the "
                "plain loop; n_samples_seen_ equal; target ours/plain <= 0.6",
            ),
            Row(
                case,
                size,
                f"fit, merge=False (serial), median of {repeats}",
                t["serial"].median,
                t["plain"].median,
                dask_ml,
                limit=limit_seconds(read_cpu + fit_serial, fit_serial),
                check=exactness(
                    t["serial"].result.estimator_, plain_model, ("mean_", "var_")
                ),
            ),
        ]
    return out


# -- 4. a slow partial_fit on a cluster -----------------------------------------
def _worker_peaks(client: Any) -> list[float]:
    from ._memory import peak_rss_bytes

    return [v / 1e6 for v in client.run(peak_rss_bytes).values()]


def cluster_job(library: str, folder: str) -> dict:
    """A slow fit on a fresh 2-worker LocalCluster: time and worker peaks."""
    from ._slow import SlowSGD

    prepare_job()
    X, y = load_dataset(folder)
    with two_worker_client() as client:
        wrap = _ours if library == "ours" else _dask_ml
        wall, _, model = cpu_timed(
            lambda: wrap(SlowSGD(random_state=0)).fit(X, y, classes=CLASSES)
        )
        peaks = _worker_peaks(client)
    return {"seconds": wall, "worker_peak_mb": max(peaks), "coef": model.coef_}


def cluster_slow_fit(settings: Settings) -> list[Row]:
    """A partial_fit slower than reading, on a 2-worker LocalCluster, zstd data:
    blocks are read on the workers ahead of the model, within a bound."""
    rows_, chunk = settings.pick((2_000_000, 250_000), (10_000_000, 500_000))
    folder = zarr_dataset(settings, rows_, chunk, compressed=True)
    warm_page_cache(folder)
    libraries = ["ours"] + (["dask_ml"] if dask_ml_wrappers() is not None else [])
    results: dict[str, list[dict]] = {name: [] for name in libraries}
    for _ in range(2):
        for name in libraries:
            results[name].append(in_fresh_process(cluster_job, name, str(folder)))
    seconds = {
        n: float(np.median([r["seconds"] for r in rs])) for n, rs in results.items()
    }
    peaks = {n: max(r["worker_peak_mb"] for r in rs) for n, rs in results.items()}
    same = all(
        np.array_equal(results["ours"][0]["coef"], r["coef"]) for r in results["ours"]
    )
    case = "slow partial_fit, LocalCluster 2 workers x 1 thread, zstd zarr"
    size = _size(rows_, -(-rows_ // chunk))
    return [
        Row(
            case,
            size,
            "fit, median of 2 (fresh cluster each)",
            seconds["ours"],
            None,
            seconds.get("dask_ml"),
            check="same coef_ in every run" if same else "coef_ DIFFER",
        ),
        Row(
            case,
            size,
            "peak RSS of the busiest worker",
            peaks["ours"],
            None,
            peaks.get("dask_ml"),
            unit="MB",
            check="target ours < 700 MB",
        ),
    ]


def fit_with_cache_job(folder: str, cache: Any, epochs_: int) -> dict:
    """Peak RSS of an epochs fit with a given block cache budget (fresh process)."""
    prepare_job()
    X, y = load_dataset(folder)
    from ._common import rss_mb

    baseline = rss_mb()
    model = incremental.Incremental(
        _sgd(), max_epochs=epochs_, shuffle_blocks=False, cache=cache
    ).fit(X, y, classes=CLASSES)
    info = incremental.cache_info()
    return with_peak_rss(
        {
            "baseline_rss_mb": baseline,
            "kept_mb": info["nbytes"] / 1e6,
            "budget_mb": info["budget"] / 1e6,
            "coef": model.coef_,
        }
    )


def cache_memory(settings: Settings) -> list[Row]:
    """Peak RSS of a 3-epoch fit with the cache off, at a fixed budget, and
    at the default budget: under the budget plus a few blocks."""
    rows_, chunk = settings.pick((4_000_000, 100_000), (8_000_000, 250_000))
    folder = zarr_dataset(settings, rows_, chunk, compressed=True)
    warm_page_cache(folder)
    size = _size(rows_, -(-rows_ // chunk))
    out = []
    for cache in (False, "256MB", "auto"):
        result = in_fresh_process(fit_with_cache_job, str(folder), cache, 3)
        out.append(
            Row(
                "block cache and memory, 3 epochs, zstd zarr",
                size,
                f"peak RSS of fit, cache={cache!r}",
                result["peak_rss_mb"],
                unit="MB",
                check=f"kept {result['kept_mb']:,.0f} MB of a budget of "
                f"{result['budget_mb']:,.0f} MB; after imports "
                f"{result['baseline_rss_mb']:.0f} MB",
            )
        )
    return out


# -- 7. what reading costs the kernel, and malloc's settings ------------------------
#: glibc's tunable that backs malloc's large chunks with transparent huge
#: pages (glibc 2.35 and later; read when a process starts).
HUGE_PAGES = "glibc.malloc.hugetlb=1"

#: glibc's tunables that make malloc reuse the memory a read frees for the
#: next read: every thread in one arena (another thread's arena gives a
#: chunk over 64 MiB its own mapping), no chunk mapped on its own (each
#: would be unmapped when freed), and up to 1 GiB of free memory kept at
#: the top of the heap instead of given back to the kernel.
REUSE = (
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0"
    ":glibc.malloc.trim_threshold=1073741824"
)

#: The malloc settings the huge-pages case compares, and their names.
MALLOC_SETTINGS = (
    (None, "glibc's default malloc"),
    (HUGE_PAGES, "huge pages"),
    (REUSE, "malloc reusing freed memory"),
    (f"{REUSE}:{HUGE_PAGES}", "malloc reusing freed memory, on huge pages"),
)


def _usage() -> tuple[float, float, float]:
    """User and kernel CPU seconds and minor page faults of this process."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, float(usage.ru_minflt)


def _costs(func: Callable[[], Any], client: Any = None) -> dict:
    """Wall, user and kernel CPU seconds and minor page faults of ``func()``:
    this process's, or summed over the workers of ``client``."""

    def usage() -> tuple[float, ...]:
        if client is None:
            return _usage()
        return tuple(map(sum, zip(*client.run(_usage).values())))

    before, start = usage(), time.perf_counter()
    func()
    wall, after = time.perf_counter() - start, usage()
    user, kernel, faults = (a - b for a, b in zip(after, before))
    return {"wall": wall, "user": user, "kernel": kernel, "faults": faults}


def _worker_environ() -> dict:
    """What a dask nanny puts in its workers' environment, with this
    process's ``GLIBC_TUNABLES``. dask sets ``MALLOC_TRIM_THRESHOLD_`` there
    (64 KiB); when the tunables name a trim threshold it takes that one."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    tunables = os.environ.get("GLIBC_TUNABLES")
    if tunables:
        environ["GLIBC_TUNABLES"] = tunables
        for item in tunables.split(":"):
            name, _, value = item.partition("=")
            if name == "glibc.malloc.trim_threshold":
                environ["MALLOC_TRIM_THRESHOLD_"] = value
    return environ


def costs_job(what: str, folder: str) -> dict:
    """In a fresh process: read every block with dask's own tasks (zarr's
    reader: ``"read"``; on a 2-worker LocalCluster: ``"read_cluster"``) or
    as ours reads them (``"read_ours"``), or fit the reference pipeline of
    ``what`` (a library of ``_library_pipeline``); its costs."""
    import dask

    prepare_job()
    X, y = load_dataset(folder)
    if what in ("read", "read_ours"):
        by = "dask" if what == "read" else "incremental"
        return with_peak_rss(_costs(lambda: _load_all(X, y, by)))
    if what == "read_cluster":
        with (
            dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}),
            two_worker_client() as client,
        ):
            return _costs(lambda: _load_all(X, y, "dask"), client)
    pipe, params = _library_pipeline(what, 0)
    return with_peak_rss(_costs(lambda: pipe.fit(X, y, **params)))


@contextlib.contextmanager
def _glibc_tunables(value: str | None) -> Iterator[None]:
    """``GLIBC_TUNABLES`` set to ``value`` (None: unset) for the processes
    started inside (a spawned process reads it when it starts)."""
    before = os.environ.pop("GLIBC_TUNABLES", None)
    if value is not None:
        os.environ["GLIBC_TUNABLES"] = value
    try:
        yield
    finally:
        os.environ.pop("GLIBC_TUNABLES", None)
        if before is not None:
            os.environ["GLIBC_TUNABLES"] = before


def _has_huge_page_tunable() -> bool:
    name, version = platform.libc_ver()
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return platform.system() == "Linux" and name == "glibc" and parts >= (2, 35)


def huge_pages(settings: Settings) -> list[Row]:
    """Where reading zstd zarr spends its CPU: the kernel's page faults.

    Each block zarr reads allocates fresh buffers (the file's bytes, the
    decompressed bytes) that the kernel maps page by page; ours reads the
    chunk files into NumPy arrays instead (``_zarr_reads``). Reading alone
    (both ways) and the reference pipeline's fit (ours, ours keeping the scaler's blocks,
    dask-ml) run in fresh processes under each of ``MALLOC_SETTINGS``
    (glibc's default; malloc's large chunks on huge pages; malloc reusing
    what a read freed; both), taking turns; medians.
    """
    if not _has_huge_page_tunable():
        return [Row("huge pages", "", "skipped: needs Linux with glibc >= 2.35")]
    rows_, chunk = settings.pick((2_000_000, 250_000), (20_000_000, 500_000))
    repeats = settings.pick(2, 3)
    folder = zarr_dataset(settings, rows_, chunk, compressed=True)
    warm_page_cache(folder)
    dask_ml = dask_ml_wrappers() is not None
    jobs = ["read", "read_ours", "read_cluster", "ours", "ours_kept"] + (
        ["dask_ml"] if dask_ml else []
    )
    runs: dict[tuple[str, str | None], list[dict]] = {}
    for _ in range(repeats):
        for tunables, _label in MALLOC_SETTINGS:
            with _glibc_tunables(tunables):
                for job in jobs:
                    result = in_fresh_process(costs_job, job, str(folder))
                    runs.setdefault((job, tunables), []).append(result)

    def typical(job: str, tunables: str | None, key: str) -> float | None:
        done = runs.get((job, tunables))
        return float(median(r[key] for r in done)) if done else None

    def spread(job: str, tunables: str | None, key: str) -> str:
        values = [r[key] for r in runs[job, tunables]]
        return f"{median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"

    def costs(job: str, tunables: str | None) -> str:
        done, peak = runs[job, tunables], ""
        if "peak_rss_mb" in done[0]:  # a cluster's job gives its workers' costs
            peak = f", peak RSS {max(r['peak_rss_mb'] for r in done):,.0f} MB"
        return (
            f"kernel {spread(job, tunables, 'kernel')} + user "
            f"{spread(job, tunables, 'user')} CPU, "
            f"{typical(job, tunables, 'faults'):,.0f} faults{peak}"
        )

    case = "reading zstd zarr: the kernel's share, and malloc's settings"
    size = _size(rows_, -(-rows_ // chunk))
    out = []
    for tunables, label in MALLOC_SETTINGS:
        measure = f"{label}: wall, median of {repeats}"
        reads = (
            ("read", "alone, dask's own tasks", ""),
            ("read_ours", "alone, as ours reads", ""),
            (
                "read_cluster",
                "alone on a 2-worker LocalCluster, dask's own tasks",
                "workers' ",
            ),
        )
        for job, how, whose in reads:
            out.append(
                Row(
                    case,
                    size,
                    f"reading every block {how}, {measure}",
                    plain=typical(job, tunables, "wall"),
                    check=whose + costs(job, tunables),
                )
            )
        out.append(
            Row(
                case,
                size,
                f"reference pipeline fit, {measure}",
                typical("ours", tunables, "wall"),
                dask_ml=typical("dask_ml", tunables, "wall") if dask_ml else None,
                check=f"ours {costs('ours', tunables)}"
                + (f"; dask-ml {costs('dask_ml', tunables)}" if dask_ml else ""),
            )
        )
        out.append(
            Row(
                case,
                size,
                f"reference pipeline fit, the scaler's blocks kept, {measure}",
                typical("ours_kept", tunables, "wall"),
                check=costs("ours_kept", tunables),
            )
        )
    return out


THROUGHPUT_CASES = {
    "one-pass": one_pass,
    "epochs": epochs,
    "scaler": scaler_pass,
    "cluster-slow": cluster_slow_fit,
    "cache-memory": cache_memory,
    "huge-pages": huge_pages,
}
