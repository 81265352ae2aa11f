"""Fit a scikit-learn pipeline on data larger than memory, from disk to disk.

This is the README's first command::

    python -m incremental.demo                     # 20,000,000 rows (3.4 GB)
    python -m incremental.demo --rows 100_000_000  # the 16.8 GB reference
    python -m incremental.demo --format parquet    # dask DataFrames, as the post
    python -m incremental.demo --out /data/demo --chunk-rows 250_000 --seed 1

It writes a synthetic binary classification dataset (float64 ``X`` with 20
features, integer ``y``) into ``--out``, one block at a time, so making the
data is out of core too; a later run with the same rows, chunks and seed
reuses it. It then fits::

    make_pipeline(
        Incremental(StandardScaler(), shuffle_blocks=False),
        Incremental(SGDClassifier(random_state=seed), random_state=seed),
    )

on the data read back from disk, holding out the last 1% of the rows,
predicts every row from disk back to disk, and prints the fit time, the
predict time, the accuracy on the held-out rows and the peak memory of the
process. What the cores did meanwhile is drawn as ``profile.png``
(with matplotlib) and ``profile.html`` (with bokeh, BokehJS inline, so both
open without a network): dask's tasks from its ``Profiler``, packed into
lanes (the most tasks that ran at once, beside the number of cores), the
phases (the scaler's pass, the SGD's pass, predicting) from the demo's own
clock, the main thread's ``partial_fit`` passes, and CPU and memory from its
``ResourceProfiler``. ``incremental._picture`` says what the picture can and
cannot show.

``--format zarr`` (the default) stores ``X.zarr`` and ``y.zarr``, fits on dask
arrays and writes ``predictions.zarr``. ``--format parquet`` stores the same
numbers as ``data.parquet``, one file per block with the columns ``x0`` ...
``x19`` and ``y``, reads them back as the origin blog post did, as dask
DataFrames (``X, y = df[columns], df["y"]``), and writes
``predictions.parquet``, one file per block indexed by row number (zarr
would need each block's row count first, which a DataFrame learns only by
reading it).

The dataset generator (:func:`write_dataset`, :func:`load_dataset`,
:func:`load_frame`) is also used by ``benchmarks/``, which measure the data
this command makes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import pandas as pd
from dask.diagnostics import ProgressBar

N_FEATURES = 20
# About 30 s on 2 cores, and already 3.5 times the peak memory of the run.
DEFAULT_ROWS = 20_000_000
DEFAULT_CHUNK_ROWS = 500_000
# Share of the rows, taken from the end, that is held out to measure accuracy.
HOLDOUT_FRACTION = 0.01
# Standard deviation of the label noise relative to the signal (which has
# unit variance): the best possible accuracy is 1 - arctan(0.25) / pi = 0.92.
LABEL_NOISE = 0.25
# Bumped whenever the generator changes, so old data on disk is not reused.
GENERATOR_VERSION = 1

X_NAME, Y_NAME, PREDICTIONS_NAME = "X.zarr", "y.zarr", "predictions.zarr"
PROFILE_HTML, PROFILE_PNG = "profile.html", "profile.png"
# The parquet dataset: one file per block, columns x0 ... x19 and y, and the
# global row number as its index; the metadata file beside it is written last.
PARQUET_NAME, PARQUET_META_NAME, PARQUET_PREDICTIONS_NAME = (
    "data.parquet",
    "data.parquet.json",
    "predictions.parquet",
)
FORMATS = ("zarr", "parquet")


# -- the dataset -------------------------------------------------------------
def _truth(seed: int, n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature means, feature scales and the unit weight vector of the labels.

    Means and scales differ between features (scales span e^-2 to e^2) so
    that scaling the features matters to SGD, as it does on real data.
    """
    rng = np.random.default_rng([seed, 2**32 - 1])
    means = rng.uniform(-5.0, 5.0, n_features)
    scales = np.exp(rng.uniform(-2.0, 2.0, n_features))
    weights = rng.standard_normal(n_features)
    return means, scales, weights / np.linalg.norm(weights)


def _x_values(seed: int, index: int, rows: int, n_features: int) -> np.ndarray:
    # Each block has its own seeded generator, so any block can be made
    # alone, in any order, on any thread, and always comes out the same.
    means, scales, _ = _truth(seed, n_features)
    z = np.random.default_rng([seed, index]).standard_normal((rows, n_features))
    return means + scales * z


def _y_values(x: np.ndarray, seed: int, index: int, n_features: int) -> np.ndarray:
    means, scales, weights = _truth(seed, n_features)
    noise = np.random.default_rng([seed, index, 1]).standard_normal(len(x))
    signal = ((x - means) / scales) @ weights
    return (signal + LABEL_NOISE * noise > 0).astype(np.int64)


def _x_block(
    block_info: dict | None = None, *, seed: int, n_features: int
) -> np.ndarray:
    info = block_info[None]
    index, rows = info["chunk-location"][0], info["chunk-shape"][0]
    return _x_values(seed, index, rows, n_features)


def _y_block(
    x: np.ndarray, block_info: dict | None = None, *, seed: int, n_features: int
) -> np.ndarray:
    return _y_values(x, seed, block_info[0]["chunk-location"][0], n_features)


def feature_names(n_features: int = N_FEATURES) -> list[str]:
    """The columns of X in the parquet dataset: ``x0``, ``x1``, ..."""
    return [f"x{j}" for j in range(n_features)]


def _frame_block(
    block: tuple[int, int, int], *, seed: int, n_features: int
) -> pd.DataFrame:
    """Block ``index`` (rows ``start:stop``) as a DataFrame: X's columns, then y."""
    index, start, stop = block
    x = _x_values(seed, index, stop - start, n_features)
    rows = pd.RangeIndex(start, stop, name="row")
    frame = pd.DataFrame(x, columns=feature_names(n_features), index=rows)
    return frame.assign(y=_y_values(x, seed, index, n_features))


def dataset_bytes(rows: int, n_features: int = N_FEATURES) -> int:
    """Bytes of ``X`` (float64) and ``y`` (int64) on disk, uncompressed."""
    return rows * (n_features + 1) * 8


def _metadata(
    rows: int, chunk_rows: int, seed: int, n_features: int, compressed: bool
) -> dict:
    return {
        "generator": "incremental.demo",
        "version": GENERATOR_VERSION,
        "rows": rows,
        "chunk_rows": chunk_rows,
        "seed": seed,
        "n_features": n_features,
        "compressed": compressed,
    }


def dataset_exists(
    folder: str | os.PathLike,
    rows: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    seed: int = 0,
    n_features: int = N_FEATURES,
    compressed: bool = False,
    file_format: str = "zarr",
) -> bool:
    """Whether ``folder`` already holds the complete dataset asked for."""
    folder = Path(folder)
    wanted = _metadata(rows, chunk_rows, seed, n_features, compressed)
    # The metadata is written last, so a run stopped mid-write never matches.
    if file_format == "parquet":
        try:
            return json.loads((folder / PARQUET_META_NAME).read_text()) == wanted
        except (OSError, ValueError):
            return False
    import zarr

    try:
        x = zarr.open_array(folder / X_NAME, mode="r")
        y = zarr.open_array(folder / Y_NAME, mode="r")
    except Exception:  # missing, partly written or not zarr: make it again
        return False
    return dict(x.attrs) == wanted and y.shape == (rows,)


def write_dataset(
    folder: str | os.PathLike,
    rows: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    seed: int = 0,
    n_features: int = N_FEATURES,
    compressed: bool = False,
    file_format: str = "zarr",
) -> bool:
    """Write a synthetic classification dataset as zarr arrays or parquet files.

    ``X`` is float64 with ``n_features`` columns of different means and
    scales; ``y`` is 0 or 1 (int64), the sign of a fixed linear function of
    the standardised ``X`` plus noise. Blocks of ``chunk_rows`` rows are made
    and written in parallel a few at a time, so memory use does not grow with
    ``rows``. Data already in ``folder`` with the same ``rows``,
    ``chunk_rows``, ``seed``, ``n_features`` and ``compressed`` is kept. Both
    formats hold the same numbers.

    Parameters
    ----------
    folder : path
        Folder that receives the data; created if missing.
    rows : int
        Number of rows.
    chunk_rows : int, default=500_000
        Rows per block (zarr chunk or parquet file, and dask block).
    seed : int, default=0
        Seed of the data; each block is drawn from its own generator.
    n_features : int, default=20
    compressed : bool, default=False
        Store X with the format's default codec (zarr: zstd; parquet: dask's
        snappy), as real data on disk usually is: reading a block then costs
        about as much CPU as fitting it. By default X is stored raw.
    file_format : {"zarr", "parquet"}, default="zarr"
        ``"zarr"``: ``X.zarr`` and ``y.zarr`` (:func:`load_dataset`).
        ``"parquet"``: ``data.parquet``, one file per block with the columns
        ``x0``, ``x1``, ... and ``y``, indexed by row number (:func:`load_frame`).

    Returns
    -------
    bool
        True if the data was written, False if matching data was reused.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> write_dataset(folder.name, 1_000, chunk_rows=300)
    True
    >>> write_dataset(folder.name, 1_000, chunk_rows=300)
    False
    >>> X, y = load_dataset(folder.name)
    >>> X.shape, X.chunks[0], str(y.dtype)
    ((1000, 20), (300, 300, 300, 100), 'int64')
    >>> write_dataset(folder.name, 1_000, chunk_rows=300, file_format="parquet")
    True
    >>> frame = load_frame(folder.name)
    >>> frame.npartitions, frame.divisions, list(frame.columns[-2:])
    (4, (0, 300, 600, 900, 999), ['x19', 'y'])
    >>> folder.cleanup()
    """
    if file_format not in FORMATS:
        raise ValueError(f"file_format must be one of {FORMATS}, got {file_format!r}")
    options = {"seed": seed, "n_features": n_features, "compressed": compressed}
    if dataset_exists(
        folder, rows, chunk_rows=chunk_rows, file_format=file_format, **options
    ):
        return False
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write = _write_parquet if file_format == "parquet" else _write_zarr
    write(folder, rows, chunk_rows, **options)
    return True


def _write_zarr(
    folder: Path,
    rows: int,
    chunk_rows: int,
    *,
    seed: int,
    n_features: int,
    compressed: bool,
) -> None:
    import zarr

    chunks = da.core.normalize_chunks((chunk_rows, n_features), (rows, n_features))
    X = da.map_blocks(
        _x_block,
        chunks=chunks,
        dtype=np.float64,
        seed=seed,
        n_features=n_features,
        meta=np.empty((0, 0)),
    )
    y = X.map_blocks(
        _y_block,
        drop_axis=1,
        dtype=np.int64,
        seed=seed,
        n_features=n_features,
        meta=np.empty(0, dtype=np.int64),
    )
    # Random floats hardly compress, so by default X is stored raw: faster to
    # write and read, and its size on disk is known in advance.
    codec = {} if compressed else {"compressors": None}
    x_store = zarr.create_array(
        folder / X_NAME,
        shape=X.shape,
        chunks=(chunk_rows, n_features),
        dtype=np.float64,
        overwrite=True,
        **codec,
    )
    y_store = zarr.create_array(
        folder / Y_NAME,
        shape=y.shape,
        chunks=(chunk_rows,),
        dtype=np.int64,
        overwrite=True,
    )
    # One computation for both, so each X block is made once and y is derived
    # from it before it is freed. Blocks match zarr chunks: no lock needed.
    da.store([X, y], [x_store, y_store], lock=False)
    x_store.attrs.update(_metadata(rows, chunk_rows, seed, n_features, compressed))


def _write_parquet(
    folder: Path,
    rows: int,
    chunk_rows: int,
    *,
    seed: int,
    n_features: int,
    compressed: bool,
) -> None:
    import dask.dataframe as dd

    starts = range(0, rows, chunk_rows)
    blocks = [(i, a, min(a + chunk_rows, rows)) for i, a in enumerate(starts)]
    options = {"seed": seed, "n_features": n_features}
    frame = dd.from_map(
        _frame_block, blocks, meta=_frame_block((0, 0, 0), **options), **options
    )
    (folder / PARQUET_META_NAME).unlink(missing_ok=True)
    shutil.rmtree(folder / PARQUET_NAME, ignore_errors=True)
    # As for zarr, raw unless asked: random floats hardly compress.
    codec = {} if compressed else {"compression": None}
    frame.to_parquet(folder / PARQUET_NAME, write_index=True, **codec)
    metadata = _metadata(rows, chunk_rows, seed, n_features, compressed)
    (folder / PARQUET_META_NAME).write_text(json.dumps(metadata))


def load_dataset(folder: str | os.PathLike) -> tuple[da.Array, da.Array]:
    """``X`` and ``y`` written by :func:`write_dataset`, as lazy dask arrays."""
    folder = Path(folder)
    return da.from_zarr(str(folder / X_NAME)), da.from_zarr(str(folder / Y_NAME))


def load_frame(folder: str | os.PathLike) -> Any:
    """The parquet dataset of :func:`write_dataset`, as a lazy dask DataFrame.

    One partition per file; the index is the row number, with known
    divisions, so ``frame.loc[start:stop]`` reads only the files it needs.
    """
    import dask.dataframe as dd

    path = str(Path(folder) / PARQUET_NAME)
    return dd.read_parquet(path, index="row", calculate_divisions=True)


def make_demo_pipeline(seed: int = 0, verbose: int = 0) -> Any:
    """The reference pipeline: a streaming scaler, then a streaming SGD.

    ``verbose`` is passed to both steps (2: a progress bar per pass).
    """
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from incremental import Incremental

    return make_pipeline(
        Incremental(StandardScaler(), shuffle_blocks=False, verbose=verbose),
        Incremental(
            SGDClassifier(random_state=seed), random_state=seed, verbose=verbose
        ),
    )


def _peak_rss_bytes() -> int | None:
    """Peak resident memory of this process so far, in bytes (None if unknown).

    The demo runs as its own process, so ``ru_maxrss`` is its own peak.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS


# -- the run -----------------------------------------------------------------
def _profilers() -> tuple[Any, Any]:
    from dask.diagnostics import Profiler, ResourceProfiler

    return Profiler(), ResourceProfiler(dt=0.25)


class _EpochTimes(logging.Handler):
    """When each fit epoch ran, from the ``incremental`` logger's epoch
    records, on ``time.perf_counter`` (the profilers' clock)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.spans: list[tuple[float, float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        epoch = getattr(record, "incremental_epoch", None)
        if epoch is not None:
            end = time.perf_counter()
            self.spans.append((end - epoch["seconds"], end, epoch["runner"]))


@contextmanager
def _epoch_times() -> Iterator[_EpochTimes]:
    logger = logging.getLogger("incremental")
    handler, level = _EpochTimes(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _phases(
    pipe: Any,
    fit: tuple[float, float],
    epochs: list,
    predict: tuple[float, float],
    route: str = "zarr to zarr",
) -> tuple[list, list]:
    """The picture's phases and the main thread's spans, ``(label, start, end)``.

    Each pipeline step's epoch is its pass; what runs between the passes
    (building the next step's blocks and, for a classifier, the one pass over
    y that finds the classes) is a phase of its own when it is visible. The
    main thread runs a pass's ``partial_fit`` calls, or, where batches are
    fitted apart in reader threads, merges their states.
    """
    from sklearn.base import is_classifier

    phases, main = [], []
    cursor = fit[0]
    for (_, step), (start, end, runner) in zip(pipe.steps, epochs):
        name = type(step.estimator).__name__
        if start - cursor > 0.01 * (fit[1] - fit[0]):
            classes = phases and is_classifier(step.estimator)
            phases.append(("classes from y" if classes else "prepare", cursor, start))
        phases.append((f"{name} pass", start, end))
        merged = f"{name}: merging states fitted in reader threads"
        main.append(
            (merged if runner == "merge" else f"{name}.partial_fit", start, end)
        )
        cursor = end
    phases.append((f"predict, {route}", *predict))
    return phases, main


def _save_profile(
    profilers: Sequence[Any], phases: list, main: list, title: str, out: Path
) -> dict[str, str]:
    """Draw the run as PNG and HTML; each entry is a path, or why there is none."""
    from ._picture import make_picture, save_html, save_png

    profiler, resources = profilers
    picture = make_picture(
        profiler.results,
        resources.results,
        phases,
        main,
        n_cores=os.cpu_count() or 1,
        title=title,
    )
    saved = {}
    for kind, save, module, path in [
        ("png", save_png, "matplotlib", out / PROFILE_PNG),
        ("html", save_html, "bokeh", out / PROFILE_HTML),
    ]:
        try:
            __import__(module)
        except ImportError:
            saved[kind] = f"not saved: {module} is not installed (pip install {module})"
            continue
        save(picture, str(path))
        saved[kind] = str(path)
    return saved


def _timed_fit(pipe: Any, X: Any, y: Any) -> tuple[float, float]:
    print("fit       pass 1: StandardScaler, pass 2: SGDClassifier", file=sys.stderr)
    started = time.perf_counter()
    pipe.fit(X, y)
    return started, time.perf_counter()


class _Data(NamedTuple):
    """The demo's data in one format: what is fitted, what is predicted."""

    X_train: Any
    y_train: Any
    X: Any  # every row, predicted from disk back to disk
    y_test: Any  # the labels of the held-out rows, lazy
    n_blocks: int
    file_format: str
    predictions: Path


def _open_data(out: Path, file_format: str, n_train: int) -> _Data:
    """The dataset in ``out``, the first ``n_train`` rows to fit on."""
    if file_format == "zarr":
        X, y = load_dataset(out)
        return _Data(
            X[:n_train],
            y[:n_train],
            X,
            y[n_train:],
            X.numblocks[0],
            "zarr",
            out / PREDICTIONS_NAME,
        )
    # As the origin blog post read its data: a pair of dask DataFrames.
    frame = load_frame(out)
    columns = [c for c in frame.columns if c != "y"]
    train = frame.loc[: n_train - 1]  # by row number: whole files, and part of one
    return _Data(
        train[columns],
        train["y"],
        frame[columns],
        frame.loc[n_train:]["y"],
        frame.npartitions,
        "parquet",
        out / PARQUET_PREDICTIONS_NAME,
    )


def _predict_to_disk(pipe: Any, data: _Data) -> None:
    predictions = pipe.predict(data.X)
    if data.file_format == "zarr":
        predictions.to_zarr(str(data.predictions))
        return
    import dask.dataframe as dd

    # Parquet, not zarr: predictions of a DataFrame come in blocks whose rows
    # are not known until read, and zarr wants them known (a pass over the
    # data to count them). Parquet takes one file per block as it comes,
    # indexed by row number like the data.
    frame = dd.from_dask_array(predictions, columns=["prediction"], index=data.X.index)
    frame.to_parquet(str(data.predictions), compression=None, write_index=True)


def _held_out_predictions(data: _Data, n_train: int) -> np.ndarray:
    if data.file_format == "zarr":
        return da.from_zarr(str(data.predictions))[n_train:].compute()
    import dask.dataframe as dd

    saved = dd.read_parquet(
        str(data.predictions), index="row", calculate_divisions=True
    )
    return saved.loc[n_train:]["prediction"].compute().to_numpy()


def run_demo(
    out: str | os.PathLike,
    rows: int = DEFAULT_ROWS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    seed: int = 0,
    file_format: str = "zarr",
) -> dict[str, Any]:
    """Make (or reuse) the data, fit, predict to disk; return the figures.

    ``file_format`` is ``"zarr"`` (dask arrays, predictions to zarr) or
    ``"parquet"`` (dask DataFrames, predictions to parquet). Prints progress
    as it goes. The returned dict has ``fit_seconds``, ``predict_seconds``,
    ``accuracy``, ``peak_rss_bytes``, ``profile`` (the pictures' paths, or
    why there are none, by ``"html"`` and ``"png"``) and ``predictions`` (a
    path).
    """
    out = Path(out)
    started = time.perf_counter()
    generated = write_dataset(
        out, rows, chunk_rows=chunk_rows, seed=seed, file_format=file_format
    )
    gen_seconds = time.perf_counter() - started
    n_test = max(1, int(rows * HOLDOUT_FRACTION))
    n_train = rows - n_test
    data = _open_data(out, file_format, n_train)
    verb = "generated" if generated else "reused"
    print(
        f"data      {verb} {rows:,} x {N_FEATURES} float64 "
        f"({dataset_bytes(rows) / 1e9:.2f} GB, {data.n_blocks} blocks "
        f"of {chunk_rows:,} rows, {file_format}) in {out} [{gen_seconds:.1f} s]",
        flush=True,
    )

    pipe = make_demo_pipeline(seed, verbose=2)
    profilers = _profilers()
    route = _route(file_format)
    with profilers[0], profilers[1], _epoch_times() as epochs:
        fit = _timed_fit(pipe, data.X_train, data.y_train)
        shutil.rmtree(data.predictions, ignore_errors=True)
        started = time.perf_counter()
        print(f"predict   every row, {route}", file=sys.stderr)
        with ProgressBar(out=sys.stderr):
            _predict_to_disk(pipe, data)
        predict = (started, time.perf_counter())
    fit_seconds, predict_seconds = fit[1] - fit[0], predict[1] - predict[0]

    predicted = _held_out_predictions(data, n_train)
    accuracy = float(np.mean(predicted == np.asarray(data.y_test.compute())))
    phases, main = _phases(pipe, fit, epochs.spans, predict, route)
    title = (
        f"python -m incremental.demo: {rows:,} rows, fit {fit_seconds:.1f} s, "
        f"predict {predict_seconds:.1f} s"
    )
    return {
        "rows": rows,
        "n_train": n_train,
        "n_test": n_test,
        "generated": generated,
        "file_format": file_format,
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "accuracy": accuracy,
        "peak_rss_bytes": _peak_rss_bytes(),
        "profile": _save_profile(profilers, phases, main, title, out),
        "predictions": str(data.predictions),
    }


def _route(file_format: str) -> str:
    return f"{file_format} to {file_format}"


def _report(result: dict[str, Any]) -> str:
    peak = result["peak_rss_bytes"]
    rows = [
        (
            "fit time",
            f"{result['fit_seconds']:.1f} s",
            f"{result['n_train']:,} rows, StandardScaler then SGDClassifier",
        ),
        (
            "predict time",
            f"{result['predict_seconds']:.1f} s",
            f"{result['rows']:,} rows, {_route(result['file_format'])}: "
            f"{result['predictions']}",
        ),
        (
            "accuracy",
            f"{result['accuracy']:.4f}",
            f"{result['n_test']:,} held-out rows (best possible about 0.92)",
        ),
        (
            "peak memory",
            "unknown" if peak is None else f"{peak / 2**20:,.0f} MiB",
            "peak RSS of this process",
        ),
        ("profile", result["profile"]["html"], "open in a browser"),
        ("picture", result["profile"]["png"], "the same, as an image"),
    ]
    return "\n".join(f"{a:<13} {b:>9}  {c}".rstrip() for a, b, c in rows)


# -- the command line ----------------------------------------------------------
def _count(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text.replace(",", ""))  # int() itself accepts 1_000
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be at least {minimum:,}, got {value:,}"
            )
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m incremental.demo",
        description="Fit StandardScaler + SGDClassifier on data larger than "
        "memory, block by block, and predict from disk to disk.",
    )
    parser.add_argument(
        "--rows",
        type=_count("--rows", 2),  # one row to fit, one held out
        default=DEFAULT_ROWS,
        help=f"rows of data (default {DEFAULT_ROWS:_}; 100_000_000 is 16.8 GB)",
    )
    parser.add_argument(
        "--chunk-rows",
        type=_count("--chunk-rows", 1),
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows per block (default {DEFAULT_CHUNK_ROWS:_})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("incremental-demo-data"),
        help="folder for the data, predictions and profile "
        "(default ./incremental-demo-data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="zarr",
        help="zarr (default): X and y as zarr arrays, fitted as dask arrays, "
        "predictions to zarr; parquet: one file per block, read back as dask "
        "DataFrames (X = df[columns], y = df['y']) as the origin blog post "
        "did, predictions to parquet",
    )
    return parser


def _check_writable(out: Path) -> str | None:
    """Why ``out`` cannot receive files, or None if it can."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Only writing tells for sure (permissions, read-only mounts, root).
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"cannot write to output folder {str(out)!r}: {error.strerror or error}"
    return None


# What each format writes: the data's folders and bytes per row beyond X and
# y (parquet also stores the row number), the predictions' folder and its
# bytes per row (an int64 each, and the row number in parquet).
_FILES = {
    "zarr": ((X_NAME, Y_NAME), 0, PREDICTIONS_NAME, 8),
    "parquet": ((PARQUET_NAME, PARQUET_META_NAME), 8, PARQUET_PREDICTIONS_NAME, 16),
}


def _missing_space(
    out: Path, rows: int, chunk_rows: int, seed: int, file_format: str = "zarr"
) -> str | None:
    """Why the disk under ``out`` is too small for this run, or None."""
    data_names, index_bytes, predictions_name, predicted_bytes = _FILES[file_format]
    need = rows * predicted_bytes
    replaced = [predictions_name]
    if not dataset_exists(
        out, rows, chunk_rows=chunk_rows, seed=seed, file_format=file_format
    ):
        need += dataset_bytes(rows) + rows * index_bytes
        replaced += data_names
    # Files of an earlier run that this run overwrites free their room.
    free = shutil.disk_usage(out).free + sum(_tree_bytes(out / n) for n in replaced)
    if need > free:
        return (
            f"not enough disk space in {str(out)!r}: {rows:,} rows need "
            f"{need / 1e9:.2f} GB, {free / 1e9:.2f} GB free; "
            "use a smaller --rows or another --out"
        )
    return None


def _tree_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with command-line arguments ``argv``; return the exit code.

    Bad arguments, an output folder that cannot be written and a disk too
    small for the data end the program with exit code 2 and a one-line
    message, before anything is written.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    problem = _check_writable(args.out) or _missing_space(
        args.out, args.rows, args.chunk_rows, args.seed, args.format
    )
    if problem:
        parser.error(problem)
    result = run_demo(args.out, args.rows, args.chunk_rows, args.seed, args.format)
    print(_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
