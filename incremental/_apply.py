"""Run a fitted estimator's method block by block: ``apply_blockwise``.

One function serves every post-fit method (``predict``, ``predict_proba``,
``transform``, ...): dask array in gives a lazy dask array out through
``map_blocks``; dask DataFrame in gives a lazy dask array through
``map_partitions`` (one block per partition the frame reports, whatever
dask's optimiser would read; a lazy dask DataFrame where the estimator
returns pandas, as after ``set_output(transform="pandas")``); anything else
gives the estimator's own result. The output's type, dtype and width are
learned by calling the method on one row. scikit-learn's configuration where
the graph is built is the one each block runs in. A ``da.from_zarr`` on
local disk is read from its chunk files (``_zarr_reads``).
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import numpy as np
import scipy.sparse as sp

from ._blocks import is_dask_array, is_dask_frame, num_rows, whole_rows
from ._cache import mark_transient
from ._conventions import current_config, run_in_config
from ._dask_compat import reported_partitions
from ._zarr_reads import faster_array_reads

POSTFIT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "score_samples",
)


def _apply_block(
    block, estimator, *, method, empty, kwargs, config, item=None, as_array=False
):
    """``estimator.method(block)`` (its ``item``-th output if it returns a list,
    as a NumPy array with ``as_array``), under scikit-learn's ``config``.

    An empty block gives ``empty``: scikit-learn rejects zero-row inputs, but
    dask collections routinely have empty partitions.
    """
    if num_rows(block) == 0:
        return empty
    result = run_in_config(config, getattr(estimator, method), block, **kwargs)
    if item is not None:
        result = result[item]
    return np.asarray(result) if as_array else result


def _sample_rows(X: Any) -> Any:
    """One synthetic row shaped and typed like X, to learn a method's output."""
    if is_dask_frame(X):
        return X._meta_nonempty.iloc[:1]
    shape = (1,) + X.shape[1:]
    if sp.issparse(X._meta):
        return type(X._meta)(shape, dtype=X.dtype)
    if X.dtype.kind in "OSU":
        return np.full(shape, "", dtype=X.dtype)
    if hasattr(type(X._meta), "__array_function__"):  # CuPy and other NumPy-likes
        return np.zeros(shape, dtype=X.dtype, like=X._meta)
    return np.zeros(shape, dtype=X.dtype)


def _probe(estimator: Any, method: str, X: Any, kwargs: dict) -> Any:
    """The method's output on one row, to learn its type, dtype and width.

    A synthetic row of zeros is tried first; an estimator that rejects it
    (a categorical model that never saw category 0, say) is probed on the
    first row of X instead, which computes that row.
    """
    func = getattr(estimator, method)
    # Only the output's type and shape are kept, so warnings about the values
    # (a zero row gives 0/0 in MiniBatchNMF.transform) would only mislead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return func(_sample_rows(X), **kwargs)
        except Exception:
            first = X.head(1) if is_dask_frame(X) else X[:1].compute()
            return func(first, **kwargs)


def _is_frame(result: Any) -> bool:
    return hasattr(result, "columns") and hasattr(result, "iloc")


def _empty_like(result: Any) -> Any:
    if isinstance(result, list):
        return [_empty_like(r) for r in result]
    if hasattr(result, "iloc"):
        return result.iloc[:0]
    return result[:0]


def _array_options(X: Any, result: Any, meta: Any) -> dict[str, Any]:
    """``map_blocks`` keywords giving the output's chunks, dtype and meta."""
    meta = _empty_like(result if meta is None else meta)
    options: dict[str, Any] = {"dtype": meta.dtype, "meta": meta}
    if result.ndim == 1 and X.ndim == 2:
        options["drop_axis"] = 1
    elif result.ndim == 2:
        options["chunks"] = (X.chunks[0], (result.shape[1],))
        if X.ndim == 1:
            options["new_axis"] = 1
    return options


def apply_blockwise(estimator: Any, method: str, X: Any, meta: Any = None, **kwargs):
    """``estimator.method(X)``, lazily and block by block for dask inputs.

    Parameters
    ----------
    estimator : fitted estimator
    method : str
        Name of the method, for example ``"predict"``.
    X : dask array, dask DataFrame, or anything the estimator accepts
    meta : array, optional
        An empty array of the output's type and dtype; by default it is
        learned by calling the method on one row.
    **kwargs
        Passed to the method on every block.

    Returns
    -------
    A lazy dask array for dask input (a list of them where the method returns
    a list, as multi-output ``predict_proba`` does; a dask DataFrame where it
    returns pandas); the estimator's own result otherwise.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import LinearRegression
    >>> X = da.arange(12.0, chunks=4).reshape(6, 2).rechunk(2)
    >>> model = LinearRegression().fit(X.compute(), X[:, 0].compute())
    >>> out = apply_blockwise(model, "predict", X)
    >>> out.chunks
    ((2, 2, 2),)
    >>> out.compute().round(6).tolist()
    [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    if not (is_dask_array(X) or is_dask_frame(X)):
        return getattr(estimator, method)(X, **kwargs)
    if is_dask_array(X):
        # zarr's chunk files read by us, as a fit reads them (_zarr_reads)
        X = faster_array_reads(whole_rows(X))
    common = {
        # The fitted estimator enters the graph once, as one key all tasks share.
        "estimator": dask.delayed(estimator, pure=False),
        "method": method,
        "kwargs": kwargs,
        "config": current_config(),
    }
    if is_dask_frame(X) and meta is not None:
        return _lazy_output(X, meta, meta, **common)  # map_partitions needs no width
    result = _probe(estimator, method, X, kwargs)
    if isinstance(result, list):
        return [
            _lazy_output(X, one, None, item=i, **common) for i, one in enumerate(result)
        ]
    return _lazy_output(X, result, meta, **common)


def _lazy_output(X: Any, result: Any, meta: Any, *, estimator: Any, **common) -> Any:
    """The lazy collection of one output shaped like ``result`` (one row's)."""
    if is_dask_frame(X):
        meta = _empty_like(result if meta is None else meta)
        # An array output is made (and optimised) here: with dask's partition
        # tuning on, the output of a parquet frame's columns could have fewer
        # blocks than X has partitions, and no longer line up with a y taken
        # from the same frame.
        with reported_partitions():
            return X.map_partitions(
                _apply_block,
                estimator,
                empty=meta,
                meta=meta,
                enforce_metadata=False,
                **common,
            )
    if _is_frame(result):
        # set_output(transform="pandas") on array input: scikit-learn gives a
        # DataFrame indexed 0..n-1, which is what a dask DataFrame made from
        # the array of the blocks' values has.
        import dask.dataframe as dd

        values = np.asarray(result)
        array = _lazy_output(
            X, values, None, estimator=estimator, as_array=True, **common
        )
        return dd.from_dask_array(array, columns=list(result.columns))
    out = X.map_blocks(
        _apply_block,
        estimator,
        empty=_empty_like(result),
        **common,
        **_array_options(X, result, meta),
    )
    # A pipeline's next stage fits on this; nothing reads its blocks again
    # but that fit's own later epochs.
    mark_transient(out)
    return out
