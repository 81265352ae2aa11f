"""Mergeable estimators: fit batches apart, merge their states in a fixed tree.

Some estimators keep a state that two halves of the data can be combined
into: sums, counts, means and variances, minima and maxima. For those, each
batch can be fitted on its own (a fresh clone's ``partial_fit``, in parallel
on every core) and the small states merged: ``merge(a, b)`` takes the state
after the batches of ``a`` and the state after the later batches of ``b``
and gives the state after both. Merges happen in a fixed tree whose shape
depends only on the number of batches (:class:`FixedTree`), so the result is
identical, bit for bit, whatever the cores, threads or cluster. It equals the
plain ``partial_fit`` loop within floating-point rounding; minima, maxima and
integer counts are equal bit for bit. The merges follow scikit-learn's own
incremental formulas (Chan et al. for means and variances), including where
its loop leaves NaN.

Merged here: :data:`MERGES` (StandardScaler, MinMaxScaler, MaxAbsScaler and
the naive Bayes family). :func:`register_merge` adds one for another class.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone


@dataclass(frozen=True)
class Merge:
    """How to merge the fitted states of one estimator class.

    ``merge(a, b)`` returns a new estimator whose state is ``a``'s followed
    by ``b``'s. ``extra(model, batch)``, if given, gives small statistics of
    a batch fitted alone (``model``) that a merged state loses but later
    merges need; merges then receive ``Part``\\ s (estimator and extra)
    instead of bare estimators.
    """

    merge: Callable[[Any, Any], Any]
    extra: Callable[[Any, dict], Any] | None = None


@dataclass
class Part:
    """A fitted state and the extra statistics of the batches behind it."""

    model: Any
    extra: Any = None


# -- the fixed tree ------------------------------------------------------------------
class FixedTree:
    """Merge parts as they come, in a tree that depends only on their number.

    Like a binary counter: two subtrees of the same size merge as soon as
    both are there, always the earlier on the left. ``result()`` merges the
    subtrees left, largest first, right to left.

    Examples
    --------
    >>> tree = FixedTree(lambda a, b: f"({a}{b})")
    >>> for part in "abcde":
    ...     tree.add(part)
    >>> tree.result()
    '(((ab)(cd))e)'
    """

    def __init__(self, merge: Callable[[Any, Any], Any]):
        self.merge = merge
        self.stack: list[tuple[int, Any]] = []  # (leaves under it, subtree)

    def add(self, part: Any) -> None:
        size = 1
        while self.stack and self.stack[-1][0] == size:
            _, left = self.stack.pop()
            part, size = self.merge(left, part), 2 * size
        self.stack.append((size, part))

    def result(self) -> Any:
        if not self.stack:
            raise ValueError("nothing to merge")
        merged = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            merged = self.merge(left, merged)
        return merged

    def __len__(self) -> int:
        return sum(size for size, _ in self.stack)


# -- helpers -------------------------------------------------------------------------
def _new_state(a: Any, b: Any) -> Any:
    """An unfitted copy of ``a`` with the attributes both sides share.

    The batches of ``b`` came after those of ``a``; the loop would have
    refused ``b``'s first batch if its features differed, so this does too.
    """
    if a.n_features_in_ != b.n_features_in_:
        raise ValueError(
            f"X has {b.n_features_in_} features, but {type(a).__name__} is "
            f"expecting {a.n_features_in_} features as input"
        )
    names_a = getattr(a, "feature_names_in_", None)
    names_b = getattr(b, "feature_names_in_", None)
    if (names_a is None) != (names_b is None) or (
        names_a is not None and not np.array_equal(names_a, names_b)
    ):
        raise ValueError(
            "The feature names should match those that were passed during fit"
        )
    out = clone(a)
    out.n_features_in_ = a.n_features_in_
    if names_a is not None:
        out.feature_names_in_ = names_a
    return out


def _safe_scale(scale: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """Scikit-learn's rule for scales: near-zero (or constant) ones become 1."""
    scale = np.array(scale, copy=True)
    if constant is None:
        constant = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant] = 1.0
    return scale


def _constant(var: np.ndarray, mean: np.ndarray, n: Any) -> np.ndarray:
    """Features whose variance is within rounding of zero (scikit-learn's rule)."""
    eps = np.finfo(np.float64).eps
    upper = n * eps * var + (n * mean * eps) ** 2
    return var <= upper


# -- scalers -------------------------------------------------------------------------
def _scaler_sums(model: Any, batch: dict) -> dict:
    """The (weighted) sum of each feature in a batch fitted alone, and
    whether X is sparse.

    A merged state whose first batch had no value for a feature has a NaN
    mean for good (as scikit-learn's loop does), which loses the sum of the
    later batches: merges carry the sums beside the state. A batch fitted
    alone has a NaN mean only where it has no value at all, so its sum
    comes from its own state, without another pass over X.
    """
    n = _per_feature(model.n_samples_seen_, model.n_features_in_)
    mean = np.zeros(len(n)) if model.mean_ is None else model.mean_
    with np.errstate(invalid="ignore"):
        total = np.where(n > 0, mean * n, 0.0)
    return {"sum": total, "sparse": sp.issparse(batch["X"])}


def _per_feature(n: Any, n_features: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(n), (n_features,))


def _one_if_equal(n: np.ndarray) -> Any:
    """``n_samples_seen_`` as scikit-learn keeps it: one number when equal."""
    return n[0] if np.max(n) == np.min(n) else n


def merge_standard_scalers(a: Part, b: Part) -> Part:
    """Merge two StandardScaler states (Chan et al.'s parallel variance)."""
    A, B = a.model, b.model
    out = _new_state(A, B)
    n_features = A.n_features_in_
    n_a = _per_feature(A.n_samples_seen_, n_features)
    n_b = _per_feature(B.n_samples_seen_, n_features)
    # A model fitted before (the start of an epoch) comes with no sums; it
    # is only ever merged on the left, and the result is not merged again.
    sum_before = np.nan if a.extra is None else a.extra["sum"]
    sparse = b.extra["sparse"]
    extra = {"sum": sum_before + b.extra["sum"], "sparse": sparse}
    if A.mean_ is None and A.var_ is None:  # with_mean=False, with_std=False
        out.mean_ = out.var_ = out.scale_ = None
        out.n_samples_seen_ = _one_if_equal(n_a + n_b)
        return Part(out, extra)
    n_a, n_b = n_a.astype(np.float64), n_b.astype(np.float64)
    n = n_a + n_b
    sum_a = A.mean_ * n_a
    sum_b = np.where(np.isnan(B.mean_), b.extra["sum"], B.mean_ * n_b)
    sum_b = np.where(n_b == 0, 0.0, sum_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (sum_a + sum_b) / n  # NaN where a's first batch had no value
    var = None
    if A.var_ is not None:
        var = _merged_variance(A, B, sparse, n_a, n_b, sum_a, sum_b)
        if sparse:  # sparse updates keep the old state when B adds none
            mean = np.where(n_b == 0, A.mean_, mean)
    out.mean_, out.var_ = mean, var
    out.n_samples_seen_ = _one_if_equal(n)
    out.scale_ = None
    if var is not None and A.with_std:
        constant = _constant(var, mean, out.n_samples_seen_)
        out.scale_ = _safe_scale(np.sqrt(var), constant)
    return Part(out, extra)


def _merged_variance(A, B, sparse: bool, n_a, n_b, sum_a, sum_b) -> np.ndarray:
    n = n_a + n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = n_a / n_b
        unnormalized = (
            A.var_ * n_a + B.var_ * n_b + ratio / n * (sum_a / ratio - sum_b) ** 2
        )
    unnormalized = np.where(n_a == 0, B.var_ * n_b, unnormalized)
    if sparse:
        unnormalized = np.where(n_b == 0, A.var_ * n_a, unnormalized)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n_b == 0, A.var_, unnormalized / n)
    # Dense updates: a batch with no value for a feature after some were
    # seen leaves its variance NaN for good; so does B's first batch here.
    poisoned = (n_b == 0) | ((n_a > 0) & np.isnan(B.mean_))
    unnormalized = np.where(poisoned, np.nan, unnormalized)
    with np.errstate(divide="ignore", invalid="ignore"):
        return unnormalized / n


def merge_min_max_scalers(A: Any, B: Any) -> Any:
    """Merge two MinMaxScaler states: minima, maxima and counts, exactly."""
    out = _new_state(A, B)
    out.n_samples_seen_ = A.n_samples_seen_ + B.n_samples_seen_
    # np.minimum keeps NaN and, on ties (+0/-0), the later value, as the loop
    data_min = np.minimum(A.data_min_, B.data_min_)
    data_max = np.maximum(A.data_max_, B.data_max_)
    low, high = (np.asarray(v, dtype=data_min.dtype) for v in A.feature_range)
    data_range = data_max - data_min
    out.scale_ = (high - low) / _safe_scale(data_range)
    out.min_ = low - data_min * out.scale_
    out.data_min_, out.data_max_, out.data_range_ = data_min, data_max, data_range
    return out


def merge_max_abs_scalers(A: Any, B: Any) -> Any:
    """Merge two MaxAbsScaler states: maxima and counts, exactly."""
    out = _new_state(A, B)
    out.n_samples_seen_ = A.n_samples_seen_ + B.n_samples_seen_
    out.max_abs_ = np.maximum(A.max_abs_, B.max_abs_)
    out.scale_ = _safe_scale(out.max_abs_)
    return out


# -- naive Bayes -------------------------------------------------------------------
def _with_classes(A: Any, B: Any) -> Any:
    out = _new_state(A, B)
    if not np.array_equal(A.classes_, B.classes_):
        raise ValueError(
            f"`classes={B.classes_!r}` is not the same as on last call to "
            f"partial_fit, was: {A.classes_!r}"
        )
    out.classes_ = A.classes_
    return out


def merge_gaussian_nbs(A: Any, B: Any) -> Any:
    """Merge two GaussianNB states, class by class (Chan et al.).

    ``partial_fit`` removes the current ``epsilon_`` from ``var_``, combines,
    and adds the new batch's ``epsilon_``: the same, in exact arithmetic, as
    combining the stored variances themselves. ``epsilon_`` is the last
    batch's, as in the loop.
    """
    out = _with_classes(A, B)
    n_a, n_b = A.class_count_, B.class_count_
    n = n_a + n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = (n_b[:, None] * B.theta_ + n_a[:, None] * A.theta_) / n[:, None]
        spread = (n_b * n_a / n)[:, None] * (A.theta_ - B.theta_) ** 2
        var = (n_a[:, None] * A.var_ + n_b[:, None] * B.var_ + spread) / n[:, None]
    only_a = (n_b == 0)[:, None]  # also classes neither saw: the first epsilon
    only_b = (n_a == 0)[:, None]
    out.theta_ = np.where(only_a, A.theta_, np.where(only_b, B.theta_, theta))
    out.var_ = np.where(only_a, A.var_, np.where(only_b, B.var_, var))
    out.class_count_ = n
    out.epsilon_ = B.epsilon_
    out.class_prior_ = n / n.sum() if A.priors is None else A.class_prior_
    return out


def _finish_counts(out: Any) -> Any:
    """Probabilities from merged counts, with the estimator's own code."""
    if hasattr(out, "feature_all_") or type(out).__name__ == "ComplementNB":
        out.feature_all_ = out.feature_count_.sum(axis=0)
    out._update_feature_log_prob(out._check_alpha())
    out._update_class_log_prior(class_prior=out.class_prior)
    return out


def merge_count_nbs(A: Any, B: Any) -> Any:
    """Merge Multinomial, Bernoulli or Complement NB states: counts add up."""
    out = _with_classes(A, B)
    out.class_count_ = A.class_count_ + B.class_count_
    out.feature_count_ = A.feature_count_ + B.feature_count_
    return _finish_counts(out)


def merge_categorical_nbs(A: Any, B: Any) -> Any:
    """Merge CategoricalNB states: counts per category add up (padded to the
    wider); ``n_categories_`` is the last batch's, as in the loop."""
    out = _with_classes(A, B)
    out.class_count_ = A.class_count_ + B.class_count_
    counts = []
    for left, right in zip(A.category_count_, B.category_count_):
        width = max(left.shape[1], right.shape[1])
        counts.append(_pad(left, width) + _pad(right, width))
    out.category_count_ = counts
    out.n_categories_ = B.n_categories_
    return _finish_counts(out)


def _pad(counts: np.ndarray, width: int) -> np.ndarray:
    return np.pad(counts, [(0, 0), (0, width - counts.shape[1])])


# -- the registry --------------------------------------------------------------------
def _plain(merge: Callable[[Any, Any], Any]) -> Merge:
    return Merge(lambda a, b: Part(merge(a.model, b.model)))


def _default_merges() -> dict[type, Merge]:
    from sklearn import naive_bayes as nb
    from sklearn import preprocessing as pre

    merges = {
        pre.StandardScaler: Merge(merge_standard_scalers, _scaler_sums),
        pre.MinMaxScaler: _plain(merge_min_max_scalers),
        pre.MaxAbsScaler: _plain(merge_max_abs_scalers),
        nb.GaussianNB: _plain(merge_gaussian_nbs),
        nb.CategoricalNB: _plain(merge_categorical_nbs),
    }
    for name in ("MultinomialNB", "BernoulliNB", "ComplementNB"):
        merges[getattr(nb, name)] = _plain(merge_count_nbs)
    # The count-based ones finish with the estimator's own (private) update
    # methods; a scikit-learn without them gets the serial loop instead.
    for cls in list(merges):
        if (
            cls.__module__.startswith("sklearn.naive_bayes")
            and cls is not nb.GaussianNB
        ):
            if not all(
                hasattr(cls, m) for m in ("_update_feature_log_prob", "_check_alpha")
            ):
                del merges[cls]
    return merges


#: Estimator class -> how its states merge. Only these exact classes (a
#: subclass may change what ``partial_fit`` does).
MERGES: dict[type, Merge] = _default_merges()


def register_merge(
    estimator_class: type,
    merge: Callable[[Any, Any], Any],
    *,
    extra: Callable[[Any, dict], Any] | None = None,
) -> None:
    """Let ``Incremental`` fit ``estimator_class`` by merging batch states.

    Parameters
    ----------
    estimator_class : type
        The exact class (subclasses are not included).
    merge : callable
        ``merge(a, b) -> estimator``: the state after ``a``'s batches followed
        by ``b``'s, as a new object (``a`` and ``b`` must not be changed). With
        ``extra``, ``merge`` receives and returns ``Part(model, extra)``.
    extra : callable, optional
        ``extra(model, batch) -> statistics`` of one batch fitted alone
        (``model``), for what merged states lose but later merges need
        (``batch`` is a dict with ``"X"``, maybe ``"y"`` and per-sample
        parameters); ``Part.extra`` of a merge combines both sides'.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator
    >>> class Counter(BaseEstimator):
    ...     def partial_fit(self, X, y=None):
    ...         self.n_ = getattr(self, "n_", 0) + len(X)
    ...         return self
    >>> def merge_counters(a, b):
    ...     out = Counter()
    ...     out.n_ = a.n_ + b.n_
    ...     return out
    >>> register_merge(Counter, merge_counters)
    >>> import dask.array as da
    >>> from incremental import Incremental
    >>> Incremental(Counter(), merge=True).fit(da.ones((10, 2), chunks=3)).n_
    10
    """
    if not isinstance(estimator_class, type):
        raise TypeError(f"estimator_class must be a class, got {estimator_class!r}")
    MERGES[estimator_class] = (
        Merge(merge, extra) if extra is not None else _plain(merge)
    )


def merge_for(estimator: Any) -> Merge | None:
    """How ``estimator``'s states merge, or None (the serial loop)."""
    return MERGES.get(type(estimator))


def is_fitted(model: Any) -> bool:
    """Whether ``model`` holds a fitted state (to merge onto)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except (NotFittedError, TypeError):
        return False
    return True


def leaf(template: Any, batch: dict, fit: Callable, merge: Merge) -> Part:
    """One batch fitted on a fresh copy of ``template``."""
    model = copy.deepcopy(template)
    fit(model, batch)
    return Part(model, None if merge.extra is None else merge.extra(model, batch))
