"""Find the classes in y, in one pass over it, for ``partial_fit(classes=...)``.

The first ``partial_fit`` of a classifier must be told every class, though
its block may hold only some. This module reads y once, block by block, and
keeps only the sorted unique labels. Blocks of a MiB or more each get a task
that finds their labels next to the block, so every core (or worker) reads
and sorts at once and only the labels travel; smaller blocks go many to a
scheduler call and share one search. Integer labels in a narrow range are
counted rather than sorted. It refuses a y with missing labels (NaN or None)
here, before anything is fitted, naming the block where it found them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._blocks import (
    default_get,
    frame_as_array,
    is_dask_array,
    is_dask_frame,
    make_blocks,
    num_rows,
)
from ._plan import blocks_within
from ._quirks import quirks_of

# Blocks of y per scheduler call: small blocks of y are fetched many to a call
# (within a bound in bytes) and share one search, so the pass costs little
# more than reading y. Blocks at least CLASSES_TASK_BYTES large (or of
# unknown size) each get a task that finds their labels where the block is,
# in parallel; only the labels travel.
CLASSES_GROUP = 256
CLASSES_GROUP_BYTES = 32 * 2**20
CLASSES_TASK_BYTES = 2**20


def find_classes(y: Any, estimator: Any) -> Any:
    """The classes in y, as ``estimator.partial_fit(classes=...)`` wants them.

    A 1-D y gives its sorted unique labels. A 2-D y gives one array per column
    for estimators that want classes per output (``MultiOutputClassifier``),
    and ``arange(n_labels)`` for a multilabel indicator matrix (the
    convention of one-vs-rest).

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import SGDClassifier
    >>> find_classes(da.from_array([2, 0, 2, 1], chunks=2), SGDClassifier())
    array([0, 1, 2])
    """
    per_output = quirks_of(estimator).classes_per_output
    if is_dask_frame(y):
        y = frame_as_array(y)  # blocks named in errors are y's partitions
    elif not is_dask_array(y):
        y = np.asarray(y)  # lists of lists and array-likes without a shape
    if y.ndim == 2 and y.shape[1] == 1 and not per_output:
        y = y[:, 0]  # a column vector is one output, as scikit-learn reads it
    per_column = _labels_per_column(y)
    if y.ndim == 1:
        return per_column[0]
    if per_output:
        return per_column
    return np.arange(y.shape[1])


def _missing(values: np.ndarray) -> np.ndarray | None:
    """Which entries of an array of labels are NaN or None (None: no such kind)."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind == "O":
        import pandas as pd

        return np.asarray(pd.isna(values))
    return None  # integers, strings, booleans: nothing can be missing


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique(values)`` of a 1-D array, counting integers in a narrow range.

    Sorting n labels costs n log n; labels are most often a few small
    integers, whose counts (``np.bincount`` over the range) cost n.

    >>> sorted_unique(np.array([3, -1, 3, 2], dtype=np.int8))
    array([-1,  2,  3], dtype=int8)
    """
    if values.dtype.kind not in "iu" or values.size == 0:
        return np.unique(values)
    low, high = values.min(), values.max()
    if int(high) - int(low) >= max(2**10, values.size):
        return np.unique(values)
    # The difference wraps in a narrow signed type (-100 - 100 in int8), but
    # its bits read as unsigned are the right offset: the range fits them.
    offsets = (values - low).view(f"u{values.dtype.itemsize}")
    present = np.flatnonzero(np.bincount(offsets.astype(np.intp)))
    return low + present.astype(values.dtype)


def _uniques(values: Any) -> list[np.ndarray] | None:
    """Sorted unique labels of each column; None if any label is missing."""
    values = np.asarray(values)
    values = values.reshape(len(values), -1)
    missing = _missing(values)
    if missing is not None and missing.any():
        return None
    return [sorted_unique(values[:, j]) for j in range(values.shape[1])]


def _block_labels(X: Any) -> list[np.ndarray] | None:
    """Task: the labels of each column of one block of y; ``[]`` when it has
    no rows, None when a label is missing."""
    values = np.asarray(X)
    return _uniques(values) if num_rows(values) else []


def _missing_error(parts: list[np.ndarray], names: list[str]) -> ValueError:
    """The error for the first missing label among ``parts``, named ``names``."""
    for part, name in zip(parts, names):
        missing = _missing(part.reshape(len(part), -1))
        rows = [] if missing is None else np.flatnonzero(missing.any(axis=1))
        if len(rows):
            return ValueError(
                f"y contains NaN or None ({len(rows)} in {name}, the first at its "
                f"row {rows[0]}): every sample needs a class label; drop or fill "
                "the unlabelled rows before fitting"
            )
    raise AssertionError("no missing label found")  # pragma: no cover


def _labels_per_column(y: Any) -> list[np.ndarray]:
    """Sorted unique labels of each column of y (one pass, block by block)."""
    if not is_dask_array(y):
        labels = _uniques(y)
        if labels is None:
            raise _missing_error([np.asarray(y)], ["y"])
        return labels
    blocks = make_blocks(y)
    found: list[np.ndarray] | None = None
    get = default_get()
    if blocks.block_bytes < CLASSES_TASK_BYTES:
        labels_of = _labels_fetched
        step = blocks_within(CLASSES_GROUP_BYTES, blocks.block_bytes, 1, CLASSES_GROUP)
    else:  # large or of unknown size (NaN): only labels come back, no memory bound
        labels_of, step = _labels_in_tasks, CLASSES_GROUP
    for start in range(0, blocks.n_blocks, step):
        group = range(start, min(start + step, blocks.n_blocks))
        for labels in labels_of(blocks, group, get):
            found = labels if found is None else list(map(np.union1d, found, labels))
    if found is None:
        raise ValueError(
            "Found array with 0 sample(s): every block of y is empty, so it "
            "has no classes to find and there is nothing to fit"
        )
    return found


def _labels_in_tasks(blocks: Any, group: range, get: Any) -> list[list[np.ndarray]]:
    """Labels of each block of ``group`` that has rows, found by one task per
    block where the block is: blocks are read and searched in parallel."""
    per_block = blocks.map_blocks(_block_labels, indices=group, get=get)
    missing = [i for i, labels in zip(group, per_block) if labels is None]
    if missing:  # fetch that block to say where
        part = np.asarray(blocks.compute(missing[:1], get)[0]["X"])
        raise _missing_error([part], [blocks.describe(missing[0])])
    return [labels for labels in per_block if labels]


def _labels_fetched(blocks: Any, group: range, get: Any) -> list[list[np.ndarray]]:
    """Labels of the blocks of ``group``, fetched in one scheduler call and
    searched at once here: small blocks cost little each."""
    computed = [np.asarray(part["X"]) for part in blocks.compute(group, get)]
    kept = [(i, part) for i, part in zip(group, computed) if num_rows(part)]
    if not kept:
        return []
    parts = [part for _, part in kept]
    labels = _uniques(np.concatenate(parts) if len(parts) > 1 else parts[0])
    if labels is None:
        raise _missing_error(parts, [blocks.describe(i) for i, _ in kept])
    return [labels]
