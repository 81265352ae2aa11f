"""``ParallelPostFit``: fit in memory, then predict, transform and score dask
data block by block.

The wrapper's post-fit methods are generated from one template around
``_apply.apply_blockwise``, and each exists exactly when the wrapped estimator
has it; ``score`` is ``_scoring.score``.
"""

from __future__ import annotations

import copy
from typing import Any

import dask
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._apply import POSTFIT_METHODS, apply_blockwise
from ._scoring import score

__all__ = ["POSTFIT_METHODS", "ParallelPostFit"]


def _has_method(name: str):
    """``available_if`` check: the fitted (else the given) estimator has ``name``."""

    def check(self) -> bool:
        return hasattr(self._delegate(), name)

    return check


def _postfit_method(name: str):
    """The wrapper's version of post-fit method ``name``, dispatched blockwise."""

    def method(self, X, **kwargs):
        check_is_fitted(self)
        return apply_blockwise(
            self.estimator_, name, X, meta=self._meta_for(name), **kwargs
        )

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"""Call the fitted estimator's ``{name}`` on X, block by block.

        Parameters
        ----------
        X : dask array, dask DataFrame, or anything the estimator accepts
        **kwargs
            Passed to ``{name}`` on every block.

        Returns
        -------
        A lazy dask array for dask input (computed with ``.compute()`` or
        written with ``.to_zarr(...)``), else the estimator's own result.
        """
    return available_if(_has_method(name))(method)


class ParallelPostFit(MetaEstimatorMixin, BaseEstimator):
    """Fit in memory, then predict, transform and score dask data in parallel.

    Wraps a scikit-learn estimator. ``fit`` fits it as usual (on data that
    fits in memory); ``predict``, ``predict_proba``, ``predict_log_proba``,
    ``decision_function``, ``transform``, ``inverse_transform`` and
    ``score_samples`` then run block by block: a dask array in gives a lazy
    dask array out (``map_blocks``), a dask DataFrame in gives a lazy dask
    array (``map_partitions``), and other input gives the estimator's own
    result. Each method exists exactly when the wrapped estimator has it.
    ``score`` on dask input reduces per-block statistics and never gathers X.

    Parameters
    ----------
    estimator : estimator
        The scikit-learn estimator to wrap.
    scoring : str or callable, optional
        Used by ``score``; by default the estimator's own metric (accuracy
        for classifiers, R^2 for regressors). Names that are reduced block by
        block: see ``incremental.STREAMING_METRICS``.
    predict_meta, predict_proba_meta, transform_meta : array, optional
        An empty array of the type and dtype the method returns, to skip
        learning it from one row (as in dask-ml).

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator. Its learned attributes (``coef_``,
        ``classes_``, ...) are also reachable on the wrapper.

    See Also
    --------
    Incremental : fit on data larger than memory with ``partial_fit``, block
        by block; it has every method of this class.
    STREAMING_METRICS : the ``scoring`` names reduced block by block.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import LogisticRegression
    >>> from incremental import ParallelPostFit
    >>> X = da.random.default_rng(0).normal(size=(10_000, 3), chunks=1_000)
    >>> y = X[:, 0] > 0
    >>> clf = ParallelPostFit(LogisticRegression())
    >>> clf = clf.fit(X[:1_000].compute(), y[:1_000].compute())
    >>> clf.predict(X)
    dask.array<_apply_block, shape=(10000,), dtype=bool, chunksize=(1000,), chunktype=numpy.ndarray>
    >>> clf.score(X, y) > 0.99
    True
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        scoring: Any = None,
        predict_meta: Any = None,
        predict_proba_meta: Any = None,
        transform_meta: Any = None,
    ):
        self.estimator = estimator
        self.scoring = scoring
        self.predict_meta = predict_meta
        self.predict_proba_meta = predict_proba_meta
        self.transform_meta = transform_meta

    # -- fitting ---------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit a clone of ``estimator`` on X (which must fit in memory)."""
        self._check_estimator()
        X, y, fit_params = dask.compute(X, y, fit_params)
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        return self

    def _check_estimator(self) -> None:
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} needs an estimator; got None")

    # -- delegation --------------------------------------------------------
    def _delegate(self) -> Any:
        return self.__dict__.get("estimator_", self.estimator)

    def _meta_for(self, method: str) -> Any:
        return {
            "predict": self.predict_meta,
            "predict_proba": self.predict_proba_meta,
            "transform": self.transform_meta,
        }.get(method)

    def __getattr__(self, name: str) -> Any:
        # Learned attributes of the fitted estimator (coef_, classes_, ...) read
        # through the wrapper. Only names ending in "_" are forwarded, so that
        # parameters and dunder lookups (pickle, copy) are never affected.
        if name.endswith("_") and not name.startswith("__"):
            fitted = self.__dict__.get("estimator_")
            if fitted is not None:
                try:
                    return getattr(fitted, name)
                except AttributeError:
                    pass
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.estimator is None:
            return tags
        wrapped = copy.deepcopy(get_tags(self.estimator))
        wrapped.requires_fit = True
        return wrapped

    # -- post-fit methods, all through one dispatch ------------------------
    predict = _postfit_method("predict")
    predict_proba = _postfit_method("predict_proba")
    predict_log_proba = _postfit_method("predict_log_proba")
    decision_function = _postfit_method("decision_function")
    transform = _postfit_method("transform")
    inverse_transform = _postfit_method("inverse_transform")
    score_samples = _postfit_method("score_samples")

    @available_if(_has_method("transform"))
    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then ``transform`` X (block by block for dask input).

        Every scikit-learn transformer has ``fit_transform``; this one exists
        exactly when the wrapped estimator has ``transform``.
        """
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(_has_method("fit_predict"))
    def fit_predict(self, X, y=None, **fit_params):
        """Fit, then ``predict`` X (block by block for dask input).

        Exists exactly when the wrapped estimator has ``fit_predict``
        (clusterers and outlier detectors).
        """
        return self.fit(X, y, **fit_params).predict(X)

    def _can_score(self) -> bool:
        return self.scoring is not None or hasattr(self._delegate(), "score")

    @available_if(_can_score)
    def score(self, X, y=None, sample_weight=None):
        """Score on X and y with ``scoring`` (default: the estimator's metric).

        On dask input each block's statistics are computed where the block is
        and then combined, so X is never gathered. Metrics that cannot be
        combined that way (see ``incremental.STREAMING_METRICS``) gather only
        ``y`` and the predictions, never X.

        Parameters
        ----------
        X : dask array, dask DataFrame, or anything the estimator accepts
        y : array-like, optional
        sample_weight : array-like, optional

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        return score(
            self.estimator_,
            X,
            y,
            sample_weight,
            scoring=self.scoring,
        )
