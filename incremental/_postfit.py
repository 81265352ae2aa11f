"""``ParallelPostFit``: fit in memory, then predict, transform and score dask
data block by block.

The wrapper's post-fit methods are generated from one template around
``_apply.apply_blockwise``, and each exists exactly when the wrapped estimator
has it; ``score`` is ``_scoring.score``. The wrapper predicts with
``estimator_`` after ``fit``, and with ``estimator`` itself when that is
fitted already (a model trained elsewhere, or a ``FrozenEstimator``).
How it looks to scikit-learn's machinery (``sample_weight`` in the fit
signature, metadata routing, the configuration inside dask's tasks) comes
from ``_conventions``.
"""

from __future__ import annotations

import copy
from typing import Any

import dask
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import UNUSED
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._apply import POSTFIT_METHODS, apply_blockwise
from ._conventions import (
    ROUTED_METHODS,
    is_frozen,
    metadata_router,
    route,
    shows_sample_weight,
)
from ._scoring import check_scoring, score

__all__ = ["POSTFIT_METHODS", "ParallelPostFit"]

# The wrapper's methods that exist only when the wrapped estimator has the
# method named here (the same name unless given).
_DELEGATED = {
    **{name: name for name in POSTFIT_METHODS},
    "score": "score",
    "fit_transform": "transform",
    "fit_predict": "fit_predict",
    "partial_fit": "partial_fit",
    "set_output": "set_output",
    "get_feature_names_out": "get_feature_names_out",
}


def estimator_has(name: str):
    """``available_if`` check: the fitted (else the given) estimator has ``name``."""

    def check(self) -> bool:
        return hasattr(self._delegate(), name)

    return check


def can_partial_fit(self) -> bool:
    """``available_if`` check of ``partial_fit``: the estimator has one, and is
    not frozen (its ``partial_fit`` would change the model clone() keeps)."""
    return hasattr(self._delegate(), "partial_fit") and not is_frozen(self.estimator)


def _is_fitted(estimator: Any) -> bool:
    if estimator is None:
        return False
    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError):  # TypeError: not an estimator
        return False
    return True


def _postfit_method(name: str):
    """The wrapper's version of post-fit method ``name``, dispatched blockwise."""

    def method(self, X, **kwargs):
        return apply_blockwise(
            self._fitted(),
            name,
            X,
            meta=self._meta_for(name),
            **route(self, name, name, kwargs),
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
    return available_if(estimator_has(name))(method)


class ParallelPostFit(MetaEstimatorMixin, BaseEstimator):
    """Fit in memory, then predict, transform and score dask data in parallel.

    Wraps a scikit-learn estimator. ``fit`` fits a clone of it as usual (on
    data that fits in memory); ``predict``, ``predict_proba``,
    ``predict_log_proba``, ``decision_function``, ``transform``,
    ``inverse_transform`` and ``score_samples`` then run block by block: a
    dask array in gives a lazy dask array out (``map_blocks``), a dask
    DataFrame in gives a lazy dask array (``map_partitions``; a lazy dask
    DataFrame after ``set_output(transform="pandas")``), and other input gives
    the estimator's own result. Each method exists exactly when the wrapped
    estimator has it. ``score`` on dask input reduces per-block statistics
    and never gathers X.

    A model fitted elsewhere (in memory, or loaded from disk) needs no
    ``fit``: ``ParallelPostFit(model).predict(X)`` uses it as it is. ``fit``
    still fits a clone, as scikit-learn requires of every estimator, so a
    pipeline or a search that calls ``fit`` retrains it. To keep a fitted
    model through ``fit``, wrap it in scikit-learn's ``FrozenEstimator``:
    ``ParallelPostFit(FrozenEstimator(model))`` keeps ``model`` and its
    ``fit`` computes nothing.

    Parameters
    ----------
    estimator : estimator
        The scikit-learn estimator to wrap, fitted or not.
    scoring : str or callable, optional
        Used by ``score``: a scorer name or a scorer (``make_scorer``); by
        default the estimator's own metric (accuracy for classifiers, R^2 for
        regressors). Names that are reduced block by block: see
        ``incremental.STREAMING_METRICS``.
    predict_meta, predict_proba_meta, transform_meta : array, optional
        An empty array of the type and dtype the method returns (as in
        dask-ml); by default it is learned by calling the method on one row.
        For a dask DataFrame, giving it spares that call.

    Attributes
    ----------
    estimator_ : estimator
        The fitted estimator. Its learned attributes (``coef_``,
        ``classes_``, ...) are also reachable on the wrapper, as are those of
        an ``estimator`` that was fitted before it was wrapped.

    See Also
    --------
    Incremental : fit on data larger than memory with ``partial_fit``, block
        by block; it has every method of this class.
    STREAMING_METRICS : the ``scoring`` names reduced block by block.
    sklearn.frozen.FrozenEstimator : keeps a fitted model through ``fit``.

    Notes
    -----
    With ``sklearn.set_config(enable_metadata_routing=True)``, metadata such
    as ``sample_weight`` reaches the wrapped estimator when it asked for it:
    ``LogisticRegression().set_fit_request(sample_weight=True)``. ``score``
    is computed by the wrapper itself, so its ``sample_weight`` is requested
    on the wrapper: ``wrapper.set_score_request(sample_weight=True)``.

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
    >>> clf.score(X, y, compute=False)  # lazy, to compute with others
    dask.array<from-value, shape=(), dtype=float64, chunksize=(), chunktype=numpy.ndarray>

    A model fitted elsewhere is used as it is; in a ``FrozenEstimator`` it
    also stays through ``fit``, which then computes nothing:

    >>> from sklearn.frozen import FrozenEstimator
    >>> model = LogisticRegression().fit(X[:1_000].compute(), y[:1_000].compute())
    >>> ParallelPostFit(model).predict_proba(X).shape
    (10000, 2)
    >>> frozen = ParallelPostFit(FrozenEstimator(model)).fit(X, y)
    >>> frozen.estimator_.estimator is model
    True
    """

    # Which method of the wrapped estimator each fitting method calls.
    _CALLS = {"fit": "fit", "partial_fit": "partial_fit"}
    # The wrapper hands these on (fit, partial_fit) or takes them itself
    # (score's compute): they are not metadata for scikit-learn to route.
    __metadata_request__fit = {"sample_weight": UNUSED}
    __metadata_request__partial_fit = {"sample_weight": UNUSED}
    __metadata_request__score = {"compute": UNUSED}

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
    @shows_sample_weight("fit")
    def fit(self, X, y=None, *, sample_weight=None, **fit_params):
        """Fit a clone of ``estimator`` on X (which must fit in memory).

        A ``FrozenEstimator`` is kept as it is, and X is not computed.

        Parameters
        ----------
        X : array-like, dask array or DataFrame (computed first)
        y : array-like, optional
        sample_weight : array-like, optional
            Passed to the estimator's ``fit``; only in the signature when
            that takes it.
        **fit_params
            Passed to the estimator's ``fit`` (with metadata routing on, only
            what it requested).

        Returns
        -------
        self
        """
        self._check_estimator()
        check_scoring(self.scoring)
        if is_frozen(self.estimator):
            check_is_fitted(self.estimator)
            self.estimator_ = self.estimator
            return self
        params = self._fit_params("fit", sample_weight, fit_params)
        X, y, params = dask.compute(X, y, params)
        self.estimator_ = clone(self.estimator).fit(X, y, **params)
        return self

    @shows_sample_weight("partial_fit")
    @available_if(can_partial_fit)
    def partial_fit(self, X, y=None, *, sample_weight=None, **fit_params):
        """One ``partial_fit`` of ``estimator_`` on X (which must fit in memory).

        The first call starts from a clone of ``estimator``, as ``fit`` does.
        Exists exactly when the wrapped estimator has ``partial_fit``;
        ``Incremental`` fits data larger than memory block by block.

        Returns
        -------
        self
        """
        self._check_estimator()
        params = self._fit_params("partial_fit", sample_weight, fit_params)
        X, y, params = dask.compute(X, y, params)
        if "estimator_" not in self.__dict__:
            self.estimator_ = clone(self.estimator)
        self.estimator_.partial_fit(X, y, **params)
        return self

    def _check_estimator(self) -> None:
        if self.estimator is None:
            raise ValueError(f"{type(self).__name__} needs an estimator; got None")

    def _fit_params(
        self, caller: str, sample_weight: Any, fit_params: dict[str, Any]
    ) -> dict[str, Any]:
        """The parameters for the wrapped estimator's fitting method.

        ``classes`` belongs to the wrapper, which hands it to every
        ``partial_fit`` (``Incremental`` finds it from y when not given), so
        it is never routed; the rest is, when metadata routing is on.
        """
        if sample_weight is not None:
            fit_params = {**fit_params, "sample_weight": sample_weight}
        callee = self._CALLS[caller]
        own = {}
        if callee == "partial_fit" and "classes" in fit_params:
            own["classes"] = fit_params.pop("classes")
        return {**route(self, caller, callee, fit_params), **own}

    # -- the estimator predicted with ------------------------------------
    def _delegate(self) -> Any:
        return self.__dict__.get("estimator_", self.estimator)

    def _fitted_or_none(self) -> Any:
        """``estimator_``, else ``estimator`` if it is fitted, else None."""
        fitted = self.__dict__.get("estimator_")
        if fitted is not None:
            return fitted
        estimator = self.__dict__.get("estimator")
        return estimator if _is_fitted(estimator) else None

    def _fitted(self) -> Any:
        fitted = self._fitted_or_none()
        if fitted is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call fit, "
                "or wrap an estimator that is fitted already"
            )
        return fitted

    def _meta_for(self, method: str) -> Any:
        return {
            "predict": self.predict_meta,
            "predict_proba": self.predict_proba_meta,
            "transform": self.transform_meta,
        }.get(method)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails. A method the estimator lacks
        # says why; learned attributes of the fitted estimator (coef_,
        # classes_, ...) read through the wrapper. Only names ending in "_"
        # are forwarded, so that parameters and dunder lookups (pickle, copy)
        # are never affected.
        if name in _DELEGATED and "estimator" in self.__dict__:
            raise self._missing_method(name)
        if name.endswith("_") and not name.startswith("__"):
            fitted = self._fitted_or_none()
            if fitted is not None:
                try:
                    return getattr(fitted, name)
                except AttributeError:
                    pass
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def _missing_method(self, name: str) -> AttributeError:
        """The error for a method the wrapper lacks because the estimator does,
        with scikit-learn's reason where it gives one."""
        estimator, needed = self._delegate(), _DELEGATED[name]
        reason = ""
        try:
            getattr(estimator, needed)
        except AttributeError as error:
            cause = error.__cause__
            reason = f" ({cause})" if isinstance(cause, AttributeError) else ""
        else:
            if needed == "partial_fit" and is_frozen(self.estimator):
                reason = " (it is frozen: partial_fit would change its model)"
        return AttributeError(
            f"The wrapped estimator {estimator!r} does not have a {needed!r} "
            f"method{reason}, so {type(self).__name__} has no {name!r} either."
        )

    def __sklearn_is_fitted__(self) -> bool:
        return self._fitted_or_none() is not None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.estimator is None:
            return tags
        wrapped = copy.deepcopy(get_tags(self.estimator))
        wrapped.requires_fit = True
        return wrapped

    def get_metadata_routing(self):
        """How metadata given to the wrapper reaches the wrapped estimator.

        Used by scikit-learn when ``enable_metadata_routing`` is on: ``fit``
        and ``partial_fit`` hand on what the estimator's ``fit`` (or, for
        ``Incremental``, ``partial_fit``) requested, each post-fit method
        what the same method requested; ``score``'s ``sample_weight`` is the
        wrapper's own (``set_score_request``).

        Returns
        -------
        sklearn.utils.metadata_routing.MetadataRouter
        """
        postfit = {name: name for name in POSTFIT_METHODS if name in ROUTED_METHODS}
        return metadata_router(self, {**self._CALLS, **postfit})

    # -- post-fit methods, all through one dispatch ------------------------
    predict = _postfit_method("predict")
    predict_proba = _postfit_method("predict_proba")
    predict_log_proba = _postfit_method("predict_log_proba")
    decision_function = _postfit_method("decision_function")
    transform = _postfit_method("transform")
    inverse_transform = _postfit_method("inverse_transform")
    score_samples = _postfit_method("score_samples")

    @available_if(estimator_has("transform"))
    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then ``transform`` X (block by block for dask input).

        Every scikit-learn transformer has ``fit_transform``; this one exists
        exactly when the wrapped estimator has ``transform``.
        """
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(estimator_has("fit_predict"))
    def fit_predict(self, X, y=None, **fit_params):
        """Fit, then ``predict`` X (block by block for dask input).

        Exists exactly when the wrapped estimator has ``fit_predict``
        (clusterers and outlier detectors).
        """
        return self.fit(X, y, **fit_params).predict(X)

    @available_if(estimator_has("set_output"))
    def set_output(self, *, transform=None):
        """Set the container of ``transform``'s output, on the wrapped estimator.

        ``"pandas"`` makes ``transform`` of a dask DataFrame a lazy dask
        DataFrame with the estimator's feature names as columns and the
        input's index and divisions; of a dask array, a lazy dask DataFrame
        indexed 0..n-1, as scikit-learn indexes a NumPy array's rows. Exists
        exactly when the wrapped estimator has ``set_output``, so
        ``Pipeline.set_output`` works through the wrapper.

        Parameters
        ----------
        transform : {"default", "pandas"} or None
            None leaves the setting as it is.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        self.estimator.set_output(transform=transform)
        fitted = self.__dict__.get("estimator_")
        if fitted is not None and fitted is not self.estimator:
            fitted.set_output(transform=transform)
        return self

    @available_if(estimator_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features=None):
        """The fitted estimator's ``get_feature_names_out``.

        Returns
        -------
        ndarray of str
        """
        return self._fitted().get_feature_names_out(input_features)

    def _can_score(self) -> bool:
        return self.scoring is not None or hasattr(self._delegate(), "score")

    @available_if(_can_score)
    def score(self, X, y=None, sample_weight=None, *, compute=True):
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
        compute : bool, default=True
            False: on dask input, return the score as a lazy 0-d dask array
            (for metrics reduced block by block), to compute later, for
            example together with others in one ``dask.compute``.
            Keyword-only: the third positional argument is ``sample_weight``.

        Returns
        -------
        score : float, or a 0-d dask array with ``compute=False``
        """
        return score(
            self._fitted(),
            X,
            y,
            sample_weight,
            scoring=self.scoring,
            compute=compute,
        )
