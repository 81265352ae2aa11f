"""Score dask data without gathering it: per-block statistics, then a reduction.

A ``StreamingMetric`` says which method of the estimator it needs, what
small statistics it takes from one block, and how to finish from the sum of
those statistics. ``score`` computes the statistics of every block in
parallel (one task per block, next to the block) and combines them. Metrics
that cannot be combined that way fall back to scikit-learn's scorer on
lazily computed predictions: that gathers ``y`` and the predictions (one
number or one row of probabilities per sample) but never ``X``. The scorer
sees the estimator through a view whose methods run block by block
(``_apply.apply_blockwise``), not through the wrapper classes.

A metric that cannot be reduced block by block, where one is required,
raises :class:`NotStreamableError`. :func:`check_scoring` refuses, before
any fit, a ``scoring`` that ``score`` could not use (an unknown name, or a
metric function where a scorer is wanted).

``score(..., compute=False)`` builds the same per-block tasks and one final
reduction as a lazy 0-d dask array, computed whenever the caller likes.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

import dask.array as da
import numpy as np
from dask.base import is_dask_collection
from dask.delayed import Delayed
from sklearn.base import is_classifier, is_regressor
from sklearn.metrics import get_scorer, get_scorer_names, log_loss

from ._apply import apply_blockwise
from ._blocks import Blocks, cull_present, describe_type, make_blocks, num_rows
from ._conventions import current_config, run_in_config
from ._quirks import quirks_of


class NotStreamableError(ValueError, TypeError):
    """This metric cannot be reduced block by block; give another ``scoring``.

    A ``ValueError`` (a bad ``scoring`` value) and, for code written against
    earlier versions, a ``TypeError``.
    """


def _weights(n: int, sample_weight: Any) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n)
    return np.asarray(sample_weight, dtype=float).reshape(n)


def _as_2d(a: Any) -> np.ndarray:
    a = np.asarray(a)
    return a.reshape(len(a), -1)


@dataclass(frozen=True)
class StreamingMetric:
    """A metric computed from small per-block statistics.

    ``stats(estimator, X, y, w)`` returns a float array for one block;
    ``combine(a, b)`` merges two blocks' statistics (a sum by default);
    ``finish(total)`` turns the merged statistics into the score.
    """

    name: str
    stats: Callable[[Any, Any, Any, np.ndarray], np.ndarray]
    finish: Callable[[np.ndarray], float]
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.add


def _accuracy_stats(est, X, y, w):
    hit = np.all(_as_2d(est.predict(X)) == _as_2d(y), axis=1)
    return np.array([np.dot(w, hit), w.sum()])


def _residual_stats(power: float):
    def stats(est, X, y, w):
        err = np.abs(_as_2d(y) - _as_2d(est.predict(X))) ** power
        return np.concatenate([[w.sum()], w @ err])

    return stats


def _mean_error(root: bool = False):
    def finish(total):
        per_output = total[1:] / total[0]
        return -float(np.mean(np.sqrt(per_output) if root else per_output))

    return finish


def _r2_stats(est, X, y, w):
    # Weight, weighted mean and centred sum of squares of y per output, and the
    # residual sum of squares: merged with Chan's formula, which stays accurate
    # when y has a large mean (plain sums of y**2 would cancel catastrophically).
    y = _as_2d(y).astype(float)
    n = w.sum()
    mean = (w @ y) / n
    centred = w @ (y - mean) ** 2
    residual = w @ (y - _as_2d(est.predict(X))) ** 2
    return np.stack([np.full_like(mean, n), mean, centred, residual])


def _r2_combine(a, b):
    n = a[0] + b[0]
    delta = b[1] - a[1]
    mean = a[1] + delta * b[0] / n
    centred = a[2] + b[2] + delta**2 * a[0] * b[0] / n
    return np.stack([n, mean, centred, a[3] + b[3]])


def _r2_finish(total):
    _, _, tot, res = total
    # As scikit-learn: a constant y scores 1 if predicted exactly, else 0.
    safe = np.where(tot > 0, tot, 1.0)
    r2 = np.where(tot > 0, 1 - res / safe, np.where(res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def _log_loss_stats(est, X, y, w):
    proba = est.predict_proba(X)
    loss = log_loss(y, proba, labels=est.classes_, normalize=False, sample_weight=w)
    return np.array([loss, w.sum()])


def _mean_score_samples_stats(est, X, y, w):
    return np.array([np.dot(w, est.score_samples(X)), w.sum()])


def _kmeans_stats(est, X, y, w):
    return np.array([est.score(X, sample_weight=w), 0.0])


def _ratio(sign: float = 1.0):
    return lambda total: sign * float(total[0] / total[1])


STREAMING_METRICS: dict[str, StreamingMetric] = {
    m.name: m
    for m in [
        StreamingMetric("accuracy", _accuracy_stats, _ratio()),
        StreamingMetric("r2", _r2_stats, _r2_finish, _r2_combine),
        StreamingMetric("neg_mean_squared_error", _residual_stats(2), _mean_error()),
        StreamingMetric(
            "neg_root_mean_squared_error", _residual_stats(2), _mean_error(root=True)
        ),
        StreamingMetric("neg_mean_absolute_error", _residual_stats(1), _mean_error()),
        StreamingMetric("neg_log_loss", _log_loss_stats, _ratio(-1.0)),
    ]
}

# Estimators whose own ``score`` is not accuracy or R^2 but still adds up.
_MEAN_SCORE_SAMPLES = StreamingMetric(
    "mean score_samples", _mean_score_samples_stats, _ratio()
)
_SUM_OF_SCORES = StreamingMetric(
    "sum of block scores", _kmeans_stats, lambda t: float(t[0])
)


_QUIRK_METRICS = {
    "mean_score_samples": _MEAN_SCORE_SAMPLES,
    "sum_of_block_scores": _SUM_OF_SCORES,
}


def default_metric(estimator: Any) -> StreamingMetric | None:
    """The streaming form of ``estimator.score``, where one is known."""
    if is_classifier(estimator):
        return STREAMING_METRICS["accuracy"]
    if is_regressor(estimator):
        return STREAMING_METRICS["r2"]
    return _QUIRK_METRICS.get(quirks_of(estimator).score)


def _block_stats(
    config: dict, metric: StreamingMetric, estimator, X, y=None, sample_weight=None
):
    if num_rows(X) == 0:
        return None
    w = _weights(num_rows(X), sample_weight)
    return run_in_config(config, metric.stats, estimator, X, y, w)


def _finish(metric: StreamingMetric, *stats) -> float:
    """The score from every block's statistics (None for an empty block)."""
    stats = [s for s in stats if s is not None]
    if not stats:
        raise ValueError("cannot score on X with no rows")
    return metric.finish(reduce(metric.combine, stats))


def score_blocks(
    estimator, metric: StreamingMetric, blocks: Blocks, indices=None
) -> float:
    """Combine ``metric``'s per-block statistics over ``blocks`` (or some of them).

    One task per block computes the statistics next to the block; only the
    small statistics travel.
    """
    stats = blocks.map_blocks(
        _block_stats, current_config(), metric, estimator, indices=indices
    )
    return _finish(metric, *stats)


def streaming_score(estimator, metric: StreamingMetric, X, y=None, sample_weight=None):
    """Combine ``metric``'s per-block statistics over the blocks of X and y."""
    blocks = make_blocks(X, y, sample_weight=sample_weight)
    return score_blocks(estimator, metric, blocks)


def lazy_score(estimator, metric: StreamingMetric, blocks: Blocks) -> da.Array:
    """:func:`score_blocks` as a lazy 0-d dask array: the per-block tasks and
    one task that combines their statistics, nothing computed."""
    graph, keys = blocks.map_graph(_block_stats, current_config(), metric, estimator)
    final = f"incremental-score-{uuid.uuid4().hex[:12]}"
    graph[final] = (_finish, metric, *keys)  # the tuple task spec map_graph uses
    value = Delayed(final, cull_present(graph, [final]))
    return da.from_delayed(value, shape=(), dtype=float)


def _choices() -> str:
    return ", ".join(sorted(STREAMING_METRICS))


# The first parameter of a metric function, where a scorer has the estimator.
_METRIC_FIRST_PARAMETERS = frozenset(
    {"y_true", "y_pred", "y_score", "y_prob", "y_proba", "labels_true", "y"}
)


def _looks_like_metric(scoring: Callable) -> bool:
    try:
        parameters = inspect.signature(scoring).parameters
    except (TypeError, ValueError):  # no signature to read: trust it
        return False
    return next(iter(parameters), None) in _METRIC_FIRST_PARAMETERS


def check_scoring(scoring: Any) -> None:
    """Raise a ValueError now for a ``scoring`` that ``score`` could not use.

    ``scoring`` is None (the estimator's own metric), a scikit-learn scorer
    name, or a scorer: a callable ``scorer(estimator, X, y)``, as made by
    ``sklearn.metrics.make_scorer``. A metric function ``metric(y_true,
    y_pred)`` is not a scorer.

    Examples
    --------
    >>> from sklearn.metrics import accuracy_score
    >>> check_scoring("accuracy")
    >>> check_scoring(accuracy_score)
    Traceback (most recent call last):
    ...
    ValueError: scoring=accuracy_score looks like a metric function rather than a scorer: a scorer is called as scorer(estimator, X, y), a metric as metric(y_true, y_pred). Wrap it with sklearn.metrics.make_scorer(accuracy_score), or give a scorer name such as 'accuracy'
    """
    if scoring is None:
        return
    if isinstance(scoring, str):
        if scoring not in get_scorer_names():
            raise ValueError(
                f"scoring={scoring!r} is not a scorer name; use one of "
                "sklearn.metrics.get_scorer_names() (reduced block by block: "
                f"{_choices()}) or a scorer made with sklearn.metrics.make_scorer"
            )
        return
    if not callable(scoring):
        raise ValueError(
            "scoring must be None, a scorer name or a scorer (a callable taking "
            f"(estimator, X, y)), got {describe_type(scoring)}"
        )
    if _looks_like_metric(scoring):
        name = getattr(scoring, "__name__", repr(scoring))
        raise ValueError(
            f"scoring={name} looks like a metric function rather than a scorer: "
            "a scorer is called as scorer(estimator, X, y), a metric as "
            "metric(y_true, y_pred). Wrap it with "
            f"sklearn.metrics.make_scorer({name}), or give a scorer name such as "
            "'accuracy'"
        )


def metric_for(estimator: Any, scoring: Any) -> StreamingMetric:
    """The streaming metric for ``scoring`` (default: the estimator's own score).

    Raises :class:`NotStreamableError` naming the choices when it cannot be
    streamed.
    """
    name = type(estimator).__name__
    if scoring is None:
        metric = default_metric(estimator)
        if metric is None:
            raise NotStreamableError(
                f"{name}.score cannot be computed block by block; pass scoring= "
                f"(one of {_choices()}) or a scikit-learn scorer"
            )
        return metric
    metric = STREAMING_METRICS.get(scoring) if isinstance(scoring, str) else None
    if metric is None:
        raise NotStreamableError(
            f"scoring={scoring!r} cannot be computed block by block for {name}; "
            f"use one of {_choices()}"
        )
    return metric


class _BlockwiseView:
    """A fitted estimator whose prediction methods run block by block.

    What a scikit-learn scorer sees: ``predict`` and its kin return lazy dask
    arrays made by ``apply_blockwise``; everything else (tags, ``classes_``)
    is the estimator's own.
    """

    _METHODS = frozenset(
        {"predict", "predict_proba", "predict_log_proba", "decision_function"}
    )

    def __init__(self, estimator: Any):
        self._estimator = estimator

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._estimator, name)
        if name not in self._METHODS:
            return attribute

        def method(X, **kwargs):
            return apply_blockwise(self._estimator, name, X, **kwargs)

        method.__name__ = name  # scikit-learn's scorers read it
        return method


def score(
    estimator, X, y=None, sample_weight=None, *, scoring=None, compute=True
) -> Any:
    """Score a fitted estimator on X and y, streaming when X is a dask collection.

    With ``compute=False`` and dask input, a lazy 0-d dask array (only for
    metrics reduced block by block); in-memory input is scored at once.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import LinearRegression
    >>> X = da.random.default_rng(0).normal(size=(1_000, 2), chunks=100)
    >>> y = X @ da.from_array([1.0, 2.0])
    >>> model = LinearRegression().fit(X.compute(), y.compute())
    >>> round(score(model, X, y, scoring="neg_mean_squared_error"), 12)
    -0.0
    >>> lazy = score(model, X, y, compute=False)
    >>> lazy.shape, round(float(lazy.compute()), 6)
    ((), 1.0)
    """
    check_scoring(scoring)
    weight = {} if sample_weight is None else {"sample_weight": sample_weight}
    if not any(is_dask_collection(v) for v in (X, y, sample_weight)):
        if scoring is None:
            return estimator.score(X, y, **weight)
        return get_scorer(scoring)(estimator, X, y, **weight)

    if scoring is None or (isinstance(scoring, str) and scoring in STREAMING_METRICS):
        metric = metric_for(estimator, scoring)
        if compute:
            return streaming_score(estimator, metric, X, y, sample_weight)
        return lazy_score(
            estimator, metric, make_blocks(X, y, sample_weight=sample_weight)
        )
    if not compute:
        raise NotStreamableError(
            f"score(..., compute=False) needs a metric reduced block by block "
            f"(one of {_choices()}, or the default of classifiers and "
            f"regressors); scoring={scoring!r} gathers y and the predictions, "
            "so use compute=True"
        )
    # A scorer that is not a sum over blocks sees lazy predictions through
    # the view, so it gathers y and the predictions only, never X.
    return get_scorer(scoring)(_BlockwiseView(estimator), X, y, **weight)
