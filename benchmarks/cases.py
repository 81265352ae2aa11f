"""The benchmark cases: each is a function ``case(settings) -> list[Row]``.

Every case runs ours (``incremental.Incremental``), the plain ``partial_fit``
loop over NumPy blocks (the lower bound for the work) and dask-ml's
``Incremental`` (when installed) side by side in one run, and checks that
ours ends in the same fitted state as the plain loop over the same blocks in
the same order (so ours uses ``shuffle_blocks=False``).

Functions whose name ends in ``_job`` run in a fresh process (see
``_common.in_fresh_process``), so the peak memory they report is their own.

The "search" case (``_search.py``, registered beside these in
``__main__``) compares searches, not fits: see there.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from statistics import median
from typing import Any

import dask
import dask.array as da
import numpy as np

from incremental._blocks import make_blocks
from incremental.demo import PARQUET_NAME, feature_names, load_dataset, load_frame

from ._common import (
    CLASSES,
    Row,
    Settings,
    dask_ml_wrappers,
    exactness,
    fmt_rows,
    in_fresh_process,
    limit_seconds,
    median_times,
    numpy_blocks,
    parquet_dataset,
    parquet_files,
    parquet_row_blocks,
    plain_fit,
    prepare_job,
    rss_mb,
    same_state,
    synthetic,
    timed,
    two_worker_client,
    warm_page_cache,
    with_peak_rss,
    zarr_dataset,
    zarr_row_blocks,
)


def _sgd(seed: int = 0) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(random_state=seed)


def _ours(estimator: Any) -> Any:
    from incremental import Incremental

    return Incremental(estimator, shuffle_blocks=False)


def _dask_ml(estimator: Any) -> Any:
    return dask_ml_wrappers().Incremental(estimator, shuffle_blocks=False)


def _ratio_check(ours: float, plain: float, target: float | None) -> str:
    if target is None:
        return ""
    verdict = "met" if ours / plain <= target else "MISSED"
    return f"; target ours/plain <= {target:.2f}: {verdict}"


def _size(rows: int, blocks: int, n_features: int = 20) -> str:
    gigabytes = rows * (n_features + 1) * 8 / 1e9
    return f"{fmt_rows(rows)} x {n_features} ({gigabytes:.2g} GB), {blocks} blocks"


def _fit_runs(X: Any, y: Any, plain_blocks: Any, with_dask_ml: bool) -> dict:
    """Fits of SGDClassifier on X and y by ours, the plain loop and dask-ml.

    ``plain_blocks`` gives the plain loop its blocks: a list, or a function
    returning a fresh reader of zarr; ``None`` leaves the plain loop out. The
    plain run returns the model and its summed ``partial_fit`` seconds.
    """
    runs = {"ours": lambda: _ours(_sgd()).fit(X, y, classes=CLASSES)}
    if plain_blocks is not None:
        blocks = plain_blocks if callable(plain_blocks) else lambda: plain_blocks
        runs["plain"] = lambda: plain_fit(_sgd(), blocks(), classes=CLASSES)
    if with_dask_ml:
        runs["dask_ml"] = lambda: _dask_ml(_sgd()).fit(X, y, classes=CLASSES)
    return runs


def _fresh_runs(
    job: Any, libraries: list[str], *args: Any, repeats: int = 1
) -> dict[str, dict]:
    """``job(library, *args)`` for each library, each run in a fresh process.

    With ``repeats`` > 1 the libraries take turns and each figure is the
    median over the repeats (the peak RSS the highest); other values come
    from the last run. A library that fails gets ``{"error": "..."}`` instead
    of stopping the whole run; libraries not asked for get ``{}``.
    """
    runs: dict[str, list[dict]] = {library: [] for library in libraries}
    failed: dict[str, dict] = {}
    for _ in range(repeats):
        for library in libraries:
            if library in failed:
                continue
            try:
                runs[library].append(in_fresh_process(job, library, *args))
            except Exception as error:  # reported in the table
                failed[library] = {"error": _describe_failure(error)}
    results: dict[str, dict] = {"ours": {}, "plain": {}, "dask_ml": {}, "ours_kept": {}}
    for library, done in runs.items():
        if library in failed:
            results[library] = failed[library]
            continue
        combined = dict(done[-1])
        for key, value in combined.items():
            if isinstance(value, float):
                values = [run[key] for run in done]
                combined[key] = max(values) if key == "peak_rss_mb" else median(values)
        results[library] = combined
    return results


def _describe_failure(error: BaseException) -> str:
    """``Type: message``; for an error without a message (a bare ``assert``),
    the line of the fresh process that raised it, from its traceback."""
    text = f"{type(error).__name__}: {error}"
    remote = str(getattr(error.__cause__, "tb", ""))
    lines = re.findall(r'File "([^"]+)", line (\d+).*\n\s*(.+)', remote)
    if str(error) or not lines:
        return text
    path, line, source = lines[-1]
    return f"{text}{source.strip()} ({'/'.join(Path(path).parts[-2:])}, line {line})"


def _failures(results: dict[str, dict]) -> str:
    return "".join(
        f"{name} FAILED: {result['error']}; "
        for name, result in results.items()
        if "error" in result
    )


# -- 1. the cost of each block -------------------------------------------------
def per_block_overhead(settings: Settings) -> list[Row]:
    """SGDClassifier on in-memory blocks of 200 rows: what each block costs.

    Data in memory, so the only difference between ours and the plain loop
    is the machinery around each ``partial_fit``.
    """
    levels = settings.pick(
        [(10, 9), (1_000, 7)], [(10, 15), (1_000, 9), (5_000, 5)]
    )  # (blocks, repeats)
    targets = {1_000: 1.10, 5_000: 1.25}
    with_dask_ml = dask_ml_wrappers() is not None
    rows = []
    for n_blocks, repeats in levels:
        Xn, yn = synthetic(n_blocks * 200, settings.seed)
        X = da.from_array(Xn, chunks=(200, 20))
        y = da.from_array(yn, chunks=200)
        blocks = numpy_blocks(Xn, yn, 200)
        t = median_times(_fit_runs(X, y, blocks, with_dask_ml), repeats)
        ours, plain = t["ours"].median, t["plain"].median
        check = exactness(t["ours"].result, t["plain"].result[0])
        check += _ratio_check(ours, plain, targets.get(n_blocks))
        rows.append(
            Row(
                "per-block overhead",
                f"{n_blocks:,} blocks x 200 rows, in memory",
                f"fit, median of {repeats}",
                ours,
                plain,
                t["dask_ml"].median if with_dask_ml else None,
                check=check,
            )
        )
    # 1,000 blocks again, each now made by a task: from_array on NumPy puts
    # the blocks themselves in the graph, which ours takes without a scheduler
    # call. Here every library pays dask's cost per task; the plain loop
    # does the same arithmetic on each block.
    Xs, ys = synthetic(1_000 * 200, settings.seed)
    X_task = da.from_array(Xs, chunks=(200, 20)) * 1.0
    y_task = da.from_array(ys, chunks=200) + 0
    views = numpy_blocks(Xs, ys, 200)
    runs = _fit_runs(
        X_task,
        y_task,
        lambda: ((Xb * 1.0, yb + 0) for Xb, yb in views),
        with_dask_ml,
    )
    t = median_times(runs, 7)
    rows.append(
        Row(
            "per-block overhead",
            "1,000 blocks x 200 rows, in memory, each block a task (X * 1.0)",
            "fit, median of 7",
            t["ours"].median,
            t["plain"].median,
            t["dask_ml"].median if with_dask_ml else None,
            check=exactness(t["ours"].result, t["plain"].result[0]),
        )
    )
    # The largest fit again without ``classes``: ours then finds them in a
    # pass over y, which users who do not know their classes pay for.
    runs = _fit_runs(X, y, blocks, with_dask_ml=False)
    runs["ours"] = lambda: _ours(_sgd()).fit(X, y)
    t = median_times(runs, repeats)
    rows.append(
        Row(
            "per-block overhead",
            f"{n_blocks:,} blocks x 200 rows, in memory",
            f"fit, classes found from y, median of {repeats}",
            t["ours"].median,
            t["plain"].median,
            check=exactness(t["ours"].result, t["plain"].result[0]),
        )
    )
    return rows


# -- 2. fitting from disk -------------------------------------------------------
def _touch_block(block: np.ndarray) -> np.ndarray:
    # A copy, not a view: a view would keep the whole block in memory.
    return np.array(block[:1]).reshape(1, -1)


def _touch_parts(X: np.ndarray, y: np.ndarray) -> tuple:
    return _touch_block(X), _touch_block(y.reshape(len(y), -1))


def _load_all(X: da.Array, y: da.Array, by: str = "incremental") -> None:
    """Read every block of X and y in parallel, keeping only a row of each:
    as ours reads them (zarr's chunk files read by ``_zarr_reads``), or
    ``by="dask"``: with dask's own tasks (zarr's reader)."""
    if by == "incremental":
        make_blocks(X, y).map_blocks(_touch_parts)
        return
    dask.compute(
        X.map_blocks(_touch_block, chunks=((1,) * X.numblocks[0], (X.shape[1],))),
        y.map_blocks(_touch_block, chunks=((1,) * y.numblocks[0], (1,)), new_axis=1),
    )


def out_of_core_fit(settings: Settings) -> list[Row]:
    """SGDClassifier fitted from zarr on disk: reading, fitting, and both.

    ``load only`` reads every block in parallel (as ours reads them, and
    with dask's own tasks, zarr's reader), ``fit only``
    sums the plain loop's ``partial_fit`` times; a fit that overlaps reading
    with fitting perfectly takes the larger of the two. The plain loop's
    total reads each block and then fits it, one after the other.
    """
    n_rows, chunk = settings.pick((2_500_000, 250_000), (25_000_000, 500_000))
    repeats = settings.pick(5, 2)
    folder = zarr_dataset(settings, n_rows, chunk)
    X, y = load_dataset(folder)
    n_train = n_rows - chunk  # the last block is held out for accuracy
    X_train, y_train = X[:n_train], y[:n_train]
    X_test, y_test = X[n_train:].compute(), y[n_train:].compute()
    size = _size(n_rows, X.numblocks[0])

    with_dask_ml = dask_ml_wrappers() is not None
    runs = {
        "load": lambda: _load_all(X_train, y_train),
        "load_dask": lambda: _load_all(X_train, y_train, by="dask"),
        **_fit_runs(
            X_train, y_train, lambda: zarr_row_blocks(folder, n_train), with_dask_ml
        ),
    }
    t = median_times(runs, repeats)
    load = t["load"].median
    fit_only = float(np.median([fitting for _, fitting in t["plain"].results]))
    plain_model = t["plain"].result[0]
    ours_model = t["ours"].result
    dask_ml_model = t["dask_ml"].result if with_dask_ml else None
    accuracy = {
        name: None if model is None else model.score(X_test, y_test)
        for name, model in [
            ("ours", ours_model),
            ("plain", plain_model),
            ("dask_ml", dask_ml_model),
        ]
    }
    case = "out-of-core fit (zarr)"
    return [
        Row(
            case,
            size,
            f"load only: every block as ours reads it, median of {repeats}",
            plain=load,
            check="reading alone, no fitting; with dask's own tasks (zarr's "
            f"reader): {t['load_dask'].median:.2f} s",
        ),
        Row(
            case,
            size,
            "fit only: sum of partial_fit in the plain loop",
            plain=fit_only,
            check="fitting alone, no reading",
        ),
        Row(
            case,
            size,
            f"fit total, median of {repeats}",
            t["ours"].median,
            t["plain"].median,
            t["dask_ml"].median if with_dask_ml else None,
            check=exactness(ours_model, plain_model)
            + f"; perfect overlap: max(load, fit) = {max(load, fit_only):.2f} s",
        ),
        Row(
            case,
            size,
            f"accuracy on the held-out block ({fmt_rows(chunk)} rows)",
            accuracy["ours"],
            accuracy["plain"],
            accuracy["dask_ml"],
            unit="",
        ),
    ]


# -- 3. the reference pipeline ---------------------------------------------------
def _plain_pipeline(folder: Path, n_train: int, predictions: Path, seed: int):
    """StandardScaler then SGDClassifier by hand, block by block, zarr to zarr."""
    import zarr
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    # time inside partial_fit only (no reading, no transform), per stage
    in_partial_fit = {"scaler": 0.0, "sgd": 0.0}
    scaler = StandardScaler()
    for Xb, _ in zarr_row_blocks(folder, n_train):
        began = time.perf_counter()
        scaler.partial_fit(Xb)
        in_partial_fit["scaler"] += time.perf_counter() - began
    sgd = _sgd(seed)
    for Xb, yb in zarr_row_blocks(folder, n_train):
        Xt = scaler.transform(Xb)
        began = time.perf_counter()
        sgd.partial_fit(Xt, yb, classes=CLASSES)
        in_partial_fit["sgd"] += time.perf_counter() - began
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    X = zarr.open_array(folder / "X.zarr", mode="r")
    out = zarr.create_array(
        predictions, shape=(X.shape[0],), chunks=(X.chunks[0],), dtype=np.int64
    )
    row = 0
    for Xb, _ in zarr_row_blocks(folder):
        out[row : row + len(Xb)] = sgd.predict(scaler.transform(Xb))
        row += len(Xb)
    predict_seconds = time.perf_counter() - start
    return scaler, sgd, fit_seconds, predict_seconds, in_partial_fit


#: The budget of the pipeline row whose scaler keeps its blocks for the SGD.
KEPT_BUDGET = "16GB"
# 512 MiB of 80 MB blocks: prefetch="auto" before it was bounded by the cores
OLD_AUTO_PREFETCH = 6


def _library_pipeline(library: str, seed: int) -> tuple[Any, dict]:
    """The reference pipeline of ``"ours"`` or ``"dask_ml"``, and its fit params."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if library == "ours":
        # ours finds classes itself (one pass over y, timed)
        return make_pipeline(_ours(StandardScaler()), _ours(_sgd(seed))), {}
    if library == "ours_kept":
        # the scaler's blocks kept in memory for the SGD's pass
        scaler = _ours(StandardScaler()).set_params(cache=KEPT_BUDGET)
        return make_pipeline(scaler, _ours(_sgd(seed))), {}
    if library == "ours_prefetch6":
        # what prefetch="auto" held before it was bounded by the cores
        scaler = _ours(StandardScaler()).set_params(prefetch=OLD_AUTO_PREFETCH)
        sgd = _ours(_sgd(seed)).set_params(prefetch=OLD_AUTO_PREFETCH)
        return make_pipeline(scaler, sgd), {}
    # dask-ml's pipeline as a dask-ml user writes it: its own StandardScaler,
    # a dask reduction over all blocks in parallel, then its Incremental.
    from dask_ml.preprocessing import StandardScaler as DaskStandardScaler

    pipe = make_pipeline(DaskStandardScaler(), _dask_ml(_sgd(seed)))
    return pipe, {"incremental__classes": CLASSES}


def _fitted_steps(pipe: Any) -> tuple[Any, Any]:
    """The fitted scaler and SGD of a pipeline (wrapped or not)."""
    return tuple(getattr(step, "estimator_", step) for step in pipe)


def _job_result(fitted: tuple, accuracy: float, baseline: float) -> dict:
    """What a pipeline job returns: ``fitted`` is (scaler, sgd, fit seconds,
    predict seconds, seconds inside partial_fit or None)."""
    scaler, sgd, fit_seconds, predict_seconds, floor = fitted
    extra = {}
    if floor is not None:
        extra = {
            "partial_fit_seconds": floor["scaler"] + floor["sgd"],
            "scaler_seconds": floor["scaler"],
            "sgd_seconds": floor["sgd"],
        }
    return with_peak_rss(
        {
            "fit_seconds": fit_seconds,
            "predict_seconds": predict_seconds,
            "accuracy": accuracy,
            "scaler": scaler,
            "sgd": sgd,
            "baseline_rss_mb": baseline,
            **extra,
        }
    )


def pipeline_job(library: str, folder: str, n_train: int, seed: int) -> dict:
    """Fit the reference pipeline with one library and predict zarr to zarr.

    Runs in a fresh process. Returns the fit and predict seconds, held-out
    accuracy, the fitted scaler and SGD, and memory figures (MB).
    """
    prepare_job()
    folder = Path(folder)
    predictions = folder / f"predictions-{library}.zarr"
    shutil.rmtree(predictions, ignore_errors=True)
    X, y = load_dataset(folder)
    baseline = rss_mb()
    if library == "plain":
        fitted = _plain_pipeline(folder, n_train, predictions, seed)
    else:
        pipe, params = _library_pipeline(library, seed)
        fit_seconds, _ = timed(lambda: pipe.fit(X[:n_train], y[:n_train], **params))
        predict_seconds, _ = timed(lambda: pipe.predict(X).to_zarr(str(predictions)))
        fitted = (*_fitted_steps(pipe), fit_seconds)
        fitted += (predict_seconds, None)
    predicted = da.from_zarr(str(predictions))[n_train:].compute()
    accuracy = float(np.mean(predicted == y[n_train:].compute()))
    shutil.rmtree(predictions, ignore_errors=True)
    return _job_result(fitted, accuracy, baseline)


def _plain_parquet_pipeline(folder: Path, n_train: int, predictions: Path, seed: int):
    """StandardScaler then SGDClassifier by hand, file by file, parquet to
    parquet, reading each file with pyarrow into pandas (no dask)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.preprocessing import StandardScaler

    features = feature_names()
    start = time.perf_counter()
    # time inside partial_fit only (no reading, no transform), per stage
    in_partial_fit = {"scaler": 0.0, "sgd": 0.0}
    scaler = StandardScaler()
    for frame in parquet_row_blocks(folder, features, n_train):
        began = time.perf_counter()
        scaler.partial_fit(frame)
        in_partial_fit["scaler"] += time.perf_counter() - began
    sgd = _sgd(seed)
    for frame in parquet_row_blocks(folder, [*features, "y"], n_train):
        Xt = scaler.transform(frame[features])
        began = time.perf_counter()
        sgd.partial_fit(Xt, frame["y"], classes=CLASSES)
        in_partial_fit["sgd"] += time.perf_counter() - began
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    predictions.mkdir()
    for i, frame in enumerate(parquet_row_blocks(folder, features)):
        predicted = sgd.predict(scaler.transform(frame))
        pq.write_table(
            pa.table({"prediction": predicted}), predictions / f"part.{i}.parquet"
        )
    predict_seconds = time.perf_counter() - start
    return scaler, sgd, fit_seconds, predict_seconds, in_partial_fit


def _predict_to_parquet(pipe: Any, frame: Any, predictions: Path) -> None:
    """The demo's way: predictions of a DataFrame, one file per partition."""
    import dask.dataframe as dd

    predicted = pipe.predict(frame[feature_names()])
    dd.from_dask_array(predicted, columns=["prediction"], index=frame.index).to_parquet(
        str(predictions), compression=None, write_index=True
    )


def _first_column(part: Any) -> Any:
    import pandas as pd

    return pd.DataFrame({"prediction": part.iloc[:, 0].to_numpy()}, index=part.index)


def _dask_io_to_parquet(frame: Any, predictions: Path) -> None:
    """What :func:`_predict_to_parquet` asks of dask without a model: read
    the features of each partition, write one column and the index to
    parquet, one file per partition."""
    frame[feature_names()].map_partitions(_first_column).to_parquet(
        str(predictions), compression=None, write_index=True
    )


def _held_out(folder: Path, column: str, n_train: int) -> np.ndarray:
    """``column`` of the rows after ``n_train``, read file by file in order."""
    import pyarrow.parquet as pq

    parts = [pq.read_table(path, columns=[column]) for path in parquet_files(folder)]
    return np.concatenate([part[column].to_numpy() for part in parts])[n_train:]


def parquet_pipeline_job(library: str, folder: str, n_train: int, seed: int) -> dict:
    """The reference pipeline on the parquet dataset with one library.

    Ours and dask-ml fit on dask DataFrames read back from the files,
    ``X, y = frame[features], frame["y"]``, and write predictions to parquet
    as the demo does; the plain loop reads each file with pyarrow. Runs in a
    fresh process and returns what :func:`pipeline_job` returns.
    """
    prepare_job()
    folder = Path(folder)
    predictions = folder / f"predictions-{library}.parquet"
    shutil.rmtree(predictions, ignore_errors=True)
    baseline = rss_mb()
    if library == "plain":
        fitted = _plain_parquet_pipeline(folder, n_train, predictions, seed)
    else:
        frame = load_frame(folder)
        train = frame.loc[: n_train - 1]  # by row number, as the demo holds out
        X, y = train[feature_names()], train["y"]
        pipe, params = _library_pipeline(library, seed)
        fit_seconds, _ = timed(lambda: pipe.fit(X, y, **params))
        predict_seconds, _ = timed(
            lambda: _predict_to_parquet(pipe, frame, predictions)
        )
        fitted = (*_fitted_steps(pipe), fit_seconds)
        fitted += (predict_seconds, None)
    predicted = _held_out(predictions, "prediction", n_train)
    labels = _held_out(folder / PARQUET_NAME, "y", n_train)
    shutil.rmtree(predictions, ignore_errors=True)
    result = _job_result(fitted, float(np.mean(predicted == labels)), baseline)
    if library == "ours":
        result["dask_io_seconds"], _ = timed(
            lambda: _dask_io_to_parquet(frame, predictions)
        )
        shutil.rmtree(predictions, ignore_errors=True)
    return result


def reference_pipeline(settings: Settings) -> list[Row]:
    """StandardScaler + SGDClassifier from zarr, predictions back to zarr.

    Each run is a fresh process, so its peak memory is its own; where the
    libraries are compared they take turns three times and the median is
    reported.
    The plain loop does the same work by hand, serially.
    """
    return _zarr_pipelines(settings, _pipeline_sizes(settings))


def prefetch_bound(settings: Settings) -> list[Row]:
    """The reference pipeline's fit with ``prefetch="auto"`` against the
    6 blocks it held before it was bounded by the cores, raw and zstd zarr,
    taking turns three times in fresh processes."""
    rows = []
    compared = [size for size in _pipeline_sizes(settings) if size[2]]
    for n_rows, chunk, _, compressed in compared:
        folder = zarr_dataset(settings, n_rows, chunk, compressed=compressed)
        warm_page_cache(folder)
        n_train = n_rows - max(1, n_rows // 100)
        libraries = ["ours", "ours_prefetch6"]
        get = _fresh_runs(
            pipeline_job, libraries, str(folder), n_train, settings.seed, repeats=3
        )
        case = "prefetch bound, reference pipeline" + (
            " (zstd zarr)" if compressed else ""
        )
        size = _size(n_rows, -(-n_rows // chunk))
        old = get["ours_prefetch6"]
        for measure, key, unit in [
            ("fit, median of 3", "fit_seconds", "s"),
            ("peak RSS of the process, highest of 3", "peak_rss_mb", "MB"),
        ]:
            value = old.get(key, float("nan"))
            note = _failures(get) or (
                f"prefetch={OLD_AUTO_PREFETCH} (the old auto): {value:,.3g} {unit}; "
                f"auto/old = {get['ours'].get(key, float('nan')) / value:.2f}x"
            )
            rows.append(
                Row(case, size, measure, get["ours"].get(key), unit=unit, check=note)
            )
    return rows


def reference_pipeline_zstd(settings: Settings) -> list[Row]:
    """The size of :func:`reference_pipeline` on zstd zarr alone (a few minutes)."""
    zstd = [size for size in _pipeline_sizes(settings) if size[3]]
    return _zarr_pipelines(settings, zstd)


def _pipeline_sizes(settings: Settings) -> list[tuple]:
    """(rows, chunk rows, run the plain loop and dask-ml too, zstd) of each size."""
    return settings.pick(
        [(2_000_000, 250_000, True, False), (2_000_000, 250_000, True, True)],
        [
            (20_000_000, 500_000, True, False),
            (20_000_000, 500_000, True, True),
            (100_000_000, 500_000, False, False),
        ],
    )


def _zarr_pipelines(settings: Settings, sizes: list[tuple]) -> list[Row]:
    """The reference pipeline's rows for each (rows, chunk rows, compare, zstd)."""
    rows = []
    for n_rows, chunk, compare, compressed in sizes:
        folder = zarr_dataset(settings, n_rows, chunk, compressed=compressed)
        rows += _compare_pipelines(
            pipeline_job,
            folder,
            n_rows,
            chunk,
            compare,
            settings.seed,
            "zstd zarr" if compressed else "zarr",
        )
    return rows


def _compare_pipelines(
    job: Any,
    folder: Path,
    n_rows: int,
    chunk: int,
    compare: bool,
    seed: int,
    file_format: str,
) -> list[Row]:
    """The rows of one size of the reference pipeline, ``job`` run per library."""
    n_train = n_rows - max(1, n_rows // 100)  # the last 1% held out
    libraries = ["ours"]
    if compare:
        libraries.append("plain")
        if dask_ml_wrappers() is not None:
            libraries.append("dask_ml")
        if job is pipeline_job:
            libraries.append("ours_kept")
    # One run of the 20M-row comparison varied by 20% between full runs
    # (the machine is shared); the 100M-row run alone takes minutes.
    repeats = 3 if compare else 1
    times = f", median of {repeats}" if repeats > 1 else ""
    warm_page_cache(folder)
    read_cpu = _read_cpu_of(folder, file_format) if compare else None
    get = _fresh_runs(job, libraries, str(folder), n_train, seed, repeats=repeats)
    check = _failures(get) + _pipeline_check(get)
    limit, limit_kept = _pipeline_limits(get["plain"], read_cpu)
    size = _size(n_rows, -(-n_rows // chunk))
    case = "reference pipeline" + ("" if file_format == "zarr" else f" ({file_format})")
    rows = []
    for measure, key, unit in [
        (f"fit (2 passes){times}", "fit_seconds", "s"),
        (f"predict, {file_format} to {file_format}{times}", "predict_seconds", "s"),
        ("accuracy, last 1% held out", "accuracy", ""),
        ("peak RSS of the process", "peak_rss_mb", "MB"),
    ]:
        note = check if key == "fit_seconds" else ""
        if key == "peak_rss_mb":
            note = "after imports: " + ", ".join(
                f"{lib} {get[lib]['baseline_rss_mb']:.0f} MB"
                for lib in libraries
                if "baseline_rss_mb" in get[lib]
            )
        rows.append(
            Row(
                case,
                size,
                measure,
                get["ours"].get(key),
                get["plain"].get(key),
                get["dask_ml"].get(key),
                unit=unit,
                check=note,
                limit=limit if key == "fit_seconds" else None,
            )
        )
        if key == "fit_seconds":
            rows += _floor_row(case, size, times, get)
            rows += _kept_row(case, size, times, get, limit_kept)
        if key == "predict_seconds":
            rows += _dask_io_row(case, size, times, get)
    return rows


def _dask_io_row(case: str, size: str, times: str, get: dict[str, dict]) -> list[Row]:
    """dask's own reading and writing of the files, no model, if measured."""
    seconds = get["ours"].get("dask_io_seconds")
    if seconds is None:
        return []
    predict = get["ours"].get("predict_seconds", float("nan"))
    note = (
        "read the features and write one column as ours' predict does, "
        f"without a model: dask's part of ours' predict ({predict:.3g} s)"
    )
    return [
        Row(
            case,
            size,
            f"dask DataFrame read + to_parquet alone{times}",
            seconds,
            get["plain"].get("predict_seconds"),
            None,
            check=note,
        )
    ]


def _kept_row(
    case: str, size: str, times: str, get: dict[str, dict], limit: float | None
) -> list[Row]:
    """Ours with the scaler's blocks kept for the SGD's pass, if it ran;
    ``limit``: the pipeline's, reading once."""
    kept = get.get("ours_kept", {})
    if not kept:
        return []
    measure = f"fit, scaler's blocks kept for the SGD (cache={KEPT_BUDGET!r}){times}"
    note = _failures({"ours_kept": kept}) or (
        f"against ours with the default cache (read twice): {get['ours'].get('fit_seconds', float('nan')):.3g} s"
    )
    return [
        Row(
            case,
            size,
            measure,
            kept.get("fit_seconds"),
            get["plain"].get("fit_seconds"),
            get["dask_ml"].get("fit_seconds"),
            check=note,
            limit=limit,
        )
    ]


def _read_cpu_of(folder: Path, file_format: str) -> float | None:
    """CPU seconds of reading X and y once (in parallel), zarr only."""
    if "zarr" not in file_format:
        return None
    from .throughput import _read_cpu

    X, y = load_dataset(folder)
    return _read_cpu(X, y).cpu


def _pipeline_limits(plain: dict, read_cpu: float | None) -> tuple:
    """The least time the pipeline's fit can take here: ``(reading twice,
    reading once)``, or Nones when unknown.

    The scaler's pass (reading and fitting, which merging spreads over every
    core) must end before the SGD's chain of partial_fit calls starts, and
    that chain is serial. Reading twice, the SGD's pass also reads every
    block again, spread over the cores beside the chain; reading once (the
    scaler's blocks kept), it is the chain alone, if keeping were free.
    """
    if read_cpu is None or "scaler_seconds" not in plain:
        return None, None
    scaler_pass = limit_seconds(read_cpu + plain["scaler_seconds"], 0.0)
    sgd = plain["sgd_seconds"]
    return scaler_pass + limit_seconds(read_cpu + sgd, sgd), scaler_pass + sgd


def _pipeline_check(get: dict[str, dict]) -> str:
    """How ours' fitted pipeline compares with the plain loop's."""
    ours, plain = get["ours"], get["plain"]
    if "sgd" not in plain or "sgd" not in ours:
        return ""
    if same_state(ours["scaler"], plain["scaler"], ("mean_", "var_")):
        exact = same_state(ours["sgd"], plain["sgd"])
        return "ours == plain bit for bit (scaler and SGD)" if exact else "SGD DIFFERS"
    worst = max(
        float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))
        for a, b in (
            (ours["scaler"].mean_, plain["scaler"].mean_),
            (ours["scaler"].var_, plain["scaler"].var_),
        )
    )
    return (
        f"scaler merged: mean_ and var_ within {worst:.1e} (relative) of the "
        "plain loop, n_samples_seen_ equal; so the SGD's input differs in the "
        "last bits"
    )


def _floor_row(case: str, size: str, times: str, get: dict[str, dict]) -> list[Row]:
    """The plain loop's time inside partial_fit alone, if it ran."""
    floor = get["plain"].get("partial_fit_seconds")
    if floor is None:
        return []
    # Run as one serial chain, the scaler's calls then the SGD's, no fit
    # could take less; merging the scaler's pass is how ours goes below it.
    note = (
        "the floor of a serial chain of calls (ours merges the scaler's pass: "
        "the limit column is ours')"
    )
    measure = f"partial_fit calls alone, scaler then SGD{times}"
    return [Row(case, size, measure, None, floor, None, check=note)]


def reference_pipeline_parquet(settings: Settings) -> list[Row]:
    """The reference pipeline on parquet files read as dask DataFrames.

    As the origin blog post read its data: one file per block, ``X, y =
    frame[features], frame["y"]``, predictions back to parquet. dask reads
    the column ``y`` of such a frame in fewer partitions than it reports,
    which is what the case checks each library survives.
    """
    n_rows, chunk = settings.pick((1_000_000, 125_000), (20_000_000, 500_000))
    folder = parquet_dataset(settings, n_rows, chunk)
    return _compare_pipelines(
        parquet_pipeline_job, folder, n_rows, chunk, True, settings.seed, "parquet"
    )


# -- 4. predicting and scoring many small blocks --------------------------------
def predict_score_small_blocks(settings: Settings) -> list[Row]:
    """predict and score on 1,000 in-memory blocks of 200 rows.

    All three use the same fitted model (ours and dask-ml fitted block by
    block, the plain loop's by hand), so predictions and scores must agree.
    """
    n_blocks, repeats = 1_000, settings.pick(3, 7)
    Xn, yn = synthetic(n_blocks * 200, settings.seed)
    X, y = da.from_array(Xn, chunks=(200, 20)), da.from_array(yn, chunks=200)
    blocks = numpy_blocks(Xn, yn, 200)
    plain_model, _ = plain_fit(_sgd(), blocks, classes=CLASSES)
    ours = _ours(_sgd()).fit(X, y, classes=CLASSES)
    models = {"ours": ours, "plain": plain_model}
    if dask_ml_wrappers() is not None:
        models["dask_ml"] = _dask_ml(_sgd()).fit(X, y, classes=CLASSES)

    def plain_predict() -> np.ndarray:
        return np.concatenate([plain_model.predict(Xb) for Xb, _ in blocks])

    def plain_score() -> float:
        hits = sum(int((plain_model.predict(Xb) == yb).sum()) for Xb, yb in blocks)
        return hits / len(yn)

    predict = {
        name: (lambda m=model: m.predict(X).compute())
        for name, model in models.items()
        if name != "plain"
    }
    predict["plain"] = plain_predict
    score = {
        name: (lambda m=model: m.score(X, y))
        for name, model in models.items()
        if name != "plain"
    }
    score["plain"] = plain_score
    tp, ts = median_times(predict, repeats), median_times(score, repeats)

    same_predictions = all(
        np.array_equal(tp[name].result, tp["plain"].result) for name in tp
    )
    same_scores = len({ts[name].result for name in ts}) == 1
    size = f"{n_blocks:,} blocks x 200 rows, in memory"
    case = "predict / score, small blocks"

    def med(t: dict, name: str) -> float | None:
        return t[name].median if name in t else None

    return [
        Row(
            case,
            size,
            f"predict, computed, median of {repeats}",
            med(tp, "ours"),
            med(tp, "plain"),
            med(tp, "dask_ml"),
            check=exactness(ours, plain_model)
            + ("; same predictions" if same_predictions else "; PREDICTIONS DIFFER"),
        ),
        Row(
            case,
            size,
            f"score (accuracy), median of {repeats}",
            med(ts, "ours"),
            med(ts, "plain"),
            med(ts, "dask_ml"),
            check=f"accuracy {ts['ours'].result:.4f}"
            + ("; same in all three" if same_scores else "; SCORES DIFFER"),
        ),
    ]


# -- 5. memory against data size ------------------------------------------------
def fit_job(library: str, folder: str, seed: int) -> dict:
    """Fit SGDClassifier on a whole zarr dataset with one library (fresh process)."""
    prepare_job()
    folder = Path(folder)
    X, y = load_dataset(folder)
    baseline = rss_mb()
    if library == "plain":
        model, _ = plain_fit(_sgd(seed), zarr_row_blocks(folder), classes=CLASSES)
    elif library == "ours":
        # The block cache off: memory bounded by a few blocks, not by the
        # data (the cache's own budget is measured in throughput.cache_memory).
        model = _ours(_sgd(seed)).set_params(cache=False).fit(X, y, classes=CLASSES)
    else:
        model = _dask_ml(_sgd(seed)).fit(X, y, classes=CLASSES)
    return with_peak_rss({"model": model, "baseline_rss_mb": baseline})


def memory_scaling(settings: Settings) -> list[Row]:
    """Peak RSS of a fit from zarr at 1x, 4x and 16x the rows, same blocks,
    block cache off.

    Each fit runs in a fresh process. Flat is the goal: memory bounded by a
    few blocks, not by the data.
    """
    base, chunk = settings.pick((1_000_000, 100_000), (2_000_000, 250_000))
    libraries = ["ours", "plain"]
    if dask_ml_wrappers() is not None:
        libraries.append("dask_ml")
    rows = []
    for factor in (1, 4, 16):
        n_rows = base * factor
        folder = zarr_dataset(settings, n_rows, chunk)
        warm_page_cache(folder)
        get = _fresh_runs(fit_job, libraries, str(folder), settings.seed)
        rows.append(
            Row(
                "peak RSS vs data size",
                f"{factor}x: " + _size(n_rows, -(-n_rows // chunk)),
                "peak RSS of fit (fresh process)",
                get["ours"].get("peak_rss_mb"),
                get["plain"].get("peak_rss_mb"),
                get["dask_ml"].get("peak_rss_mb"),
                unit="MB",
                check=_failures(get)
                + (
                    exactness(get["ours"]["model"], get["plain"]["model"])
                    + f"; after imports {get['ours']['baseline_rss_mb']:.0f} MB"
                    if "model" in get["ours"] and "model" in get["plain"]
                    else ""
                ),
            )
        )
    return rows


# -- 6. a dask.distributed cluster ------------------------------------------------
def distributed_fit(settings: Settings) -> list[Row]:
    """The same fit on the local scheduler and on a 2-worker LocalCluster.

    The model must come out the same, bit for bit, whatever the scheduler.
    """

    n_rows, chunk = settings.pick((2_500_000, 250_000), (10_000_000, 500_000))
    repeats = 3
    folder = zarr_dataset(settings, n_rows, chunk)
    X, y = load_dataset(folder)
    with_dask_ml = dask_ml_wrappers() is not None

    local = median_times(
        _fit_runs(X, y, lambda: zarr_row_blocks(folder), with_dask_ml), repeats
    )
    with two_worker_client():
        # The plain loop uses no scheduler, so it is timed once, above.
        cluster_t = median_times(_fit_runs(X, y, None, with_dask_ml), repeats)
    cluster_t["plain"] = local["plain"]

    plain_model = local["plain"].result[0]
    size = _size(n_rows, X.numblocks[0])
    case = "dask.distributed"
    rows = []
    for label, t in [
        ("fit, local threaded scheduler", local),
        ("fit, LocalCluster 2 workers x 1 thread", cluster_t),
    ]:
        rows.append(
            Row(
                case,
                size,
                f"{label}, median of {repeats}",
                t["ours"].median,
                t["plain"].median,
                t["dask_ml"].median if with_dask_ml else None,
                check=exactness(t["ours"].result, plain_model),
            )
        )
    return rows


CASES = {
    "overhead": per_block_overhead,
    "out-of-core": out_of_core_fit,
    "pipeline": reference_pipeline,
    "pipeline-zstd": reference_pipeline_zstd,
    "prefetch": prefetch_bound,
    "pipeline-parquet": reference_pipeline_parquet,
    "predict": predict_score_small_blocks,
    "memory": memory_scaling,
    "distributed": distributed_fit,
}
