"""What every benchmark case shares: settings, rows of the table, timing,
memory in a fresh process, datasets on disk, the plain loop and dask-ml.

The zarr and parquet datasets are the demo's (``incremental.demo.write_dataset``),
so the benchmarks measure the data the README's first command makes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import multiprocessing
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from incremental.demo import PARQUET_NAME, write_dataset

from ._memory import peak_rss_bytes

CLASSES = np.array([0, 1])


@dataclass
class Settings:
    """How big and how often: ``quick`` shrinks every case."""

    quick: bool
    data_dir: Path
    seed: int = 0

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


@dataclass
class Row:
    """One line of the results table.

    ``ours``, ``plain`` and ``dask_ml`` are in ``unit`` ("s", "MB" or "" for
    a score); None where a column does not apply or was not run. ``limit``
    is the least time any library could take: total CPU seconds / cores or
    the serial chain of ``partial_fit`` calls, whichever is larger.
    """

    case: str
    size: str
    measure: str
    ours: float | None = None
    plain: float | None = None
    dask_ml: float | None = None
    unit: str = "s"
    check: str = ""
    limit: float | None = None


# -- timing ------------------------------------------------------------------
@contextlib.contextmanager
def two_worker_client() -> Iterator[Any]:
    """A dask.distributed ``Client`` of a fresh LocalCluster of 2 worker
    processes x 1 thread, closed on leaving."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # Workers closing at the end log harmless heartbeat errors.
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``func()`` took, and its result."""
    gc.collect()  # so one run does not pay for the garbage of the one before
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


@dataclass
class Timing:
    """Seconds of each repeat of one run, and what each repeat returned."""

    seconds: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def result(self) -> Any:
        return self.results[-1]


def median_times(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, Timing]:
    """Time each run ``repeats`` times; ``Timing.median`` is what to report.

    The runs take turns (A B C A B C ...) rather than going one after the
    other, so a machine that slows down or speeds up mid-way affects them all
    alike.
    """
    timings = {name: Timing() for name in runs}
    for _ in range(repeats):
        for name, func in runs.items():
            took, result = timed(func)
            timings[name].seconds.append(took)
            timings[name].results.append(result)
    return timings


# -- memory ------------------------------------------------------------------
def in_fresh_process(func: Callable[..., dict], /, *args: Any, **kwargs: Any) -> dict:
    """Run ``func(*args, **kwargs)`` in a new Python process and return its dict.

    A new process (spawned, not forked) starts with nothing allocated, so the
    peak RSS it reports is the peak of this one job (measured as
    ``_memory.peak_rss_bytes`` does, not with ``ru_maxrss``, which
    a child inherits from this process on Linux). ``func`` must be a
    module-level function; it adds ``peak_rss_mb`` to its result through
    :func:`with_peak_rss`.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(func, *args, **kwargs).result()


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    import psutil

    return psutil.Process().memory_info().rss / 1e6


def with_peak_rss(result: dict) -> dict:
    """``result`` plus the peak RSS of this process so far, in MB."""
    return {**result, "peak_rss_mb": peak_rss_bytes() / 1e6}


# -- data --------------------------------------------------------------------
def zarr_dataset(
    settings: Settings, rows: int, chunk_rows: int, compressed: bool = False
) -> Path:
    """Folder of the demo's dataset with these rows and chunks, made if needed.

    ``compressed``: X stored with zarr's default codec (zstd), else raw.
    """
    codec = "-zstd" if compressed else ""
    folder = (
        settings.data_dir / f"rows{rows}-chunks{chunk_rows}-seed{settings.seed}{codec}"
    )
    write_dataset(
        folder, rows, chunk_rows=chunk_rows, seed=settings.seed, compressed=compressed
    )
    return folder


def _touch_memory(nbytes: int) -> None:
    chunk = 256 * 2**20
    kept = []
    for _ in range(max(1, nbytes // chunk)):
        block = np.empty(chunk // 8)
        block[:] = 1.0  # every page touched
        kept.append(block)


def warm_memory(share: float = 0.75) -> float:
    """Touch ``share`` of the available memory once, in a throwaway process;
    return the seconds it took.

    On a virtual machine the host may back guest memory only when it is
    first touched: measured here, keeping 3.2 GB of new arrays took 6.0 s
    the first time and 0.9 s once the memory had been touched, against
    0.4 s for arrays freed as they go. Whichever library runs first (and
    one that keeps more in memory) would pay for it; touched once, all find
    the memory as a machine that has been up for a while has it.
    """
    import psutil

    nbytes = int(share * psutil.virtual_memory().available)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(_touch_memory, nbytes).result()
    return time.perf_counter() - started


def warm_page_cache(folder: Path) -> None:
    """Read every file of a dataset once, so the libraries timed after it
    find the same files in the operating system's page cache.

    Without it the first library of a row pays for reading from the disk
    what earlier cases pushed out of the cache, and the others do not.
    """
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as file:
                while file.read(16 * 2**20):
                    pass


def zarr_row_blocks(
    folder: Path, stop: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(X_i, y_i)`` read straight from zarr, one block at a time, no dask.

    This is how a user without any wrapper would stream the data: the plain
    loop's reader. ``stop`` ends the rows early (a held-out tail).
    """
    import zarr

    X = zarr.open_array(folder / "X.zarr", mode="r")
    y = zarr.open_array(folder / "y.zarr", mode="r")
    step = X.chunks[0]
    stop = X.shape[0] if stop is None else stop
    for start in range(0, stop, step):
        end = min(start + step, stop)
        yield X[start:end], y[start:end]


def parquet_dataset(settings: Settings, rows: int, chunk_rows: int) -> Path:
    """Folder of the demo's parquet dataset (one file per block), made if needed."""
    folder = settings.data_dir / f"rows{rows}-chunks{chunk_rows}-seed{settings.seed}"
    write_dataset(
        folder, rows, chunk_rows=chunk_rows, seed=settings.seed, file_format="parquet"
    )
    return folder


def parquet_files(folder: Path) -> list[Path]:
    """The parquet files of a folder in row order (dask writes part.0, part.1, ...)."""
    return sorted(
        folder.glob("part.*.parquet"), key=lambda p: int(p.name.split(".")[1])
    )


def parquet_row_blocks(
    folder: Path, columns: list[str], stop: int | None = None
) -> Iterator[Any]:
    """One pandas DataFrame per file of the demo's parquet dataset, no dask.

    Read with pyarrow, as a user without any wrapper would stream the files:
    the plain loop's reader. ``stop`` ends the rows early (a held-out tail).
    """
    import pyarrow.parquet as pq

    start = 0
    for path in parquet_files(folder / PARQUET_NAME):
        if stop is not None and start >= stop:
            return
        frame = pq.read_table(path, columns=columns).to_pandas()
        rows = len(frame)
        yield frame if stop is None else frame.iloc[: stop - start]
        start += rows


def synthetic(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An in-memory X (rows x 20) and a y that depends on it linearly."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 20))
    y = (X @ rng.standard_normal(20) + 0.25 * rng.standard_normal(rows) > 0).astype(
        np.int64
    )
    return X, y


def numpy_blocks(
    X: np.ndarray, y: np.ndarray, rows_per_block: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """X and y cut into row blocks (views, no copies), as dask would cut them."""
    return [
        (X[a : a + rows_per_block], y[a : a + rows_per_block])
        for a in range(0, len(X), rows_per_block)
    ]


# -- the plain loop and the checks -------------------------------------------
def plain_fit(
    estimator: Any, blocks: Iterable[tuple[Any, Any]], **params: Any
) -> tuple[Any, float]:
    """``estimator.partial_fit`` on each block; returns it and the fit seconds.

    The seconds count ``partial_fit`` alone, not getting the blocks: for
    blocks read from disk that is the fit-only time.
    """
    fitting = 0.0
    for Xb, yb in blocks:
        start = time.perf_counter()
        estimator.partial_fit(Xb, yb, **params)
        fitting += time.perf_counter() - start
    return estimator, fitting


def same_state(a: Any, b: Any, names: Iterable[str] = ("coef_", "intercept_")) -> bool:
    """Whether two fitted estimators have equal learned arrays, bit for bit."""
    return all(
        np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
        for name in names
    )


def exactness(
    ours: Any, plain: Any, names: Iterable[str] = ("coef_", "intercept_")
) -> str:
    """The table's words for :func:`same_state` of ours and the plain loop."""
    if same_state(ours, plain, names):
        return "ours == plain bit for bit"
    return "ours != plain: NOT EXACT"


# -- dask-ml -------------------------------------------------------------------
def dask_ml_wrappers() -> Any:
    """The ``dask_ml.wrappers`` module, or None when dask-ml is not installed."""
    try:
        import dask_ml.wrappers
    except ImportError:
        return None
    return dask_ml.wrappers


def prepare_job() -> None:
    """What every library's job in a fresh process does before it is timed.

    Hides dask-ml's warnings (about the dask it was built for), and imports
    dask.distributed when installed: dask imports it on the first compute of
    a process (about 0.3 s here), and importing dask-ml does it at once, so
    without this only the other libraries' timed fits would pay for it.
    """
    warnings.filterwarnings("ignore", module="dask_ml")
    try:
        import distributed  # noqa: F401
    except ImportError:
        pass


def fmt_rows(n: int) -> str:
    """``25_000_000`` as ``25M``, ``200_000`` as ``200k``."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            value = n / size
            return f"{value:g}{suffix}"
    return f"{n:,}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# -- limits --------------------------------------------------------------------
def cpu_timed(func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process (all its threads) and result."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    result = func()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def limit_seconds(cpu_seconds: float, serial_seconds: float) -> float:
    """The least time the work can take here: all the CPU it needs spread
    over every core, or the chain of calls that must follow one another."""
    return max(cpu_seconds / cores(), serial_seconds)


def cores() -> int:
    from dask.system import CPU_COUNT

    return int(CPU_COUNT)
