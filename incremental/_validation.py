"""Validation during a fit: scoring held-out data, and early stopping.

:func:`validation_scorer` checks the validation data before any block is
fitted and returns a function that scores a model on it block by block,
with a streaming metric (X is never gathered). :class:`EarlyStopping` keeps
the best epoch's model and says when to stop.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ._blocks import Blocks, describe_type, is_dask_frame, make_blocks, rows_or_nan
from ._scoring import metric_for, score_blocks


def _n_features(X: Any) -> int | None:
    """Columns of X, when it has a second axis and it is known."""
    if is_dask_frame(X):
        return len(X.columns) if hasattr(X, "columns") else None
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) < 2 or not isinstance(shape[1], int | np.integer):
        return None
    return int(shape[1])


def check_validation_data(validation_data: Any, X: Any) -> tuple[Any, Any]:
    """``(X_val, y_val)`` from ``validation_data``, checked against X.

    Examples
    --------
    >>> import numpy as np
    >>> check_validation_data(np.zeros((3, 2)), np.zeros((5, 2)))
    Traceback (most recent call last):
    ...
    ValueError: validation_data must be a pair (X_val, y_val), got numpy.ndarray
    """
    if not (isinstance(validation_data, tuple | list) and len(validation_data) == 2):
        raise ValueError(
            "validation_data must be a pair (X_val, y_val), got "
            f"{describe_type(validation_data)}"
        )
    X_val, y_val = validation_data
    n_x, n_y = rows_or_nan(X_val), rows_or_nan(y_val)
    if not (math.isnan(n_x) or math.isnan(n_y)) and n_x != n_y:
        raise ValueError(
            f"validation_data's X_val has {int(n_x)} rows but y_val has "
            f"{int(n_y)}: y_val must have one label per row of X_val"
        )
    wanted, given = _n_features(X), _n_features(X_val)
    if wanted is not None and given is not None and wanted != given:
        raise ValueError(
            f"validation_data's X_val has {given} features but X has {wanted}: "
            "they must have the same columns"
        )
    return X_val, y_val


def validation_scorer(
    estimator: Any,
    scoring: Any,
    blocks: Blocks,
    held_out: np.ndarray | None,
    validation_data: Any = None,
) -> Callable[[Any], float]:
    """A function scoring a model on the held-out blocks or ``validation_data``.

    The metric is chosen (and refused, if it cannot be streamed) now, before
    any block is fitted.
    """
    metric = metric_for(estimator, scoring)
    if validation_data is not None:
        X_val, y_val = validation_data
        try:
            held = make_blocks(X_val, y_val)
        except ValueError as error:
            error.add_note(_ABOUT_VALIDATION_DATA)
            raise
        return partial(_score_validation_data, metric=metric, blocks=held)
    return lambda model: score_blocks(model, metric, blocks, held_out)


# Errors about validation data call its parts "X" and "y"; say which they are.
_ABOUT_VALIDATION_DATA = "incremental: X and y here are validation_data's X_val, y_val"


def _score_validation_data(model: Any, metric: Any, blocks: Blocks) -> float:
    try:
        return score_blocks(model, metric, blocks)
    except Exception as error:
        error.add_note(_ABOUT_VALIDATION_DATA)
        raise


class EarlyStopping:
    """Stop when the validation score has not improved by ``tol`` for
    ``n_iter_no_change`` epochs in a row; keep the best epoch's model.

    Examples
    --------
    >>> stopping = EarlyStopping(n_iter_no_change=2, tol=0.1)
    >>> [stopping.update(score, f"model {i}") for i, score in
    ...  enumerate([0.5, 0.55, 0.52])]
    [False, False, True]
    >>> stopping.best_score, stopping.best_model
    (0.55, 'model 1')
    """

    def __init__(self, n_iter_no_change: int, tol: float):
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.best_score = -math.inf
        self.best_model: Any = None
        self.no_change = 0

    def update(self, score: float, model: Any) -> bool:
        """Record an epoch's score (and a copy of its model, if the best so
        far); True when the fit should stop."""
        improved_enough = score >= self.best_score + self.tol
        self.no_change = 0 if improved_enough else self.no_change + 1
        if score > self.best_score:
            self.best_score, self.best_model = score, copy.deepcopy(model)
        return self.no_change >= self.n_iter_no_change
