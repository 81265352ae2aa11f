"""scikit-learn's conventions for meta-estimators, as the wrappers follow them.

This module owns how the wrappers look to scikit-learn's own machinery:

- **configuration in dask's threads**: scikit-learn keeps ``set_config`` /
  ``config_context`` per thread, and dask runs tasks in other threads (or
  processes). :func:`current_config` is captured where a task graph is built
  and :func:`run_in_config` applies it inside each task, as scikit-learn's
  own ``utils.parallel.delayed`` does for joblib.
- **visible sample weights**: :func:`shows_sample_weight` makes a wrapper's
  ``fit`` name ``sample_weight`` in its signature exactly when the wrapped
  estimator's method takes it, which is what
  ``sklearn.utils.validation.has_fit_parameter`` (and so meta-estimators and
  the estimator checks) look at.
- **metadata routing**: :func:`metadata_router` describes which method of
  the wrapped estimator each of the wrapper's methods calls, and
  :func:`route` picks the metadata meant for it when
  ``enable_metadata_routing`` is on (and passes everything on when it is off).
- **frozen estimators**: :func:`is_frozen` recognises an estimator that
  ``clone`` keeps as it is (``sklearn.frozen.FrozenEstimator``).

It knows nothing of dask collections or of the wrappers' classes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sklearn import config_context, get_config
from sklearn.base import clone
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    process_routing,
)

from ._quirks import accepts, forwards_keywords

#: Methods whose metadata scikit-learn can route (``score_samples`` is not one).
ROUTED_METHODS = frozenset(
    {
        "fit",
        "partial_fit",
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "score",
        "transform",
        "inverse_transform",
    }
)


# -- configuration ---------------------------------------------------------------
def current_config() -> dict[str, Any]:
    """scikit-learn's configuration in this thread, to carry into tasks."""
    return get_config()


def run_in_config(config: Mapping[str, Any], func: Callable, /, *args, **kwargs) -> Any:
    """``func(*args, **kwargs)`` under scikit-learn's configuration ``config``.

    Costs a dictionary comparison where the configuration is already the
    thread's own (the thread that built the graph, or the same settings).

    Examples
    --------
    >>> import sklearn
    >>> with sklearn.config_context(assume_finite=True):
    ...     config = current_config()
    >>> run_in_config(config, lambda: sklearn.get_config()["assume_finite"])
    True
    >>> sklearn.get_config()["assume_finite"]
    False
    """
    if get_config() == config:
        return func(*args, **kwargs)
    with config_context(**config):
        return func(*args, **kwargs)


# -- sample_weight in the signature ------------------------------------------------
def takes_sample_weight(estimator: Any, method: str) -> bool:
    """Whether ``estimator.method`` names ``sample_weight`` in its signature."""
    return accepts(getattr(estimator, method, None), "sample_weight")


def refuses_sample_weight(estimator: Any, method: str) -> bool:
    """Whether ``estimator.method`` would reject a ``sample_weight`` keyword."""
    inner = getattr(estimator, method, None)
    return not (accepts(inner, "sample_weight") or forwards_keywords(inner))


class _SampleWeightSignature:
    """A method whose signature names ``sample_weight`` only when the wrapped
    estimator's ``inner`` method takes it (see :func:`shows_sample_weight`)."""

    def __init__(self, method: Any, inner: str):
        self.method = method  # a function, or a descriptor such as available_if
        self.inner = inner
        functools.update_wrapper(self, method)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        bound = self.method.__get__(obj, owner)
        # On the class, the whole signature: scikit-learn reads it there to
        # make the set_*_request methods.
        if obj is None or takes_sample_weight(
            obj.__dict__.get("estimator"), self.inner
        ):
            return bound
        signature = inspect.signature(bound)
        shown = [p for p in signature.parameters.values() if p.name != "sample_weight"]

        @functools.wraps(bound)
        def method(*args, **kwargs):
            return bound(*args, **kwargs)

        method.__signature__ = signature.replace(parameters=shown)
        return method


def shows_sample_weight(inner: str) -> Callable[[Any], Any]:
    """Decorate a wrapper's ``fit`` (or ``partial_fit``) so that its signature
    names ``sample_weight`` exactly when the wrapped estimator's ``inner``
    method does.

    ``has_fit_parameter(wrapper, "sample_weight")`` then answers for the
    estimator inside; calling the method works the same either way. Put it
    above ``available_if``.
    """
    return lambda method: _SampleWeightSignature(method, inner)


# -- metadata routing ----------------------------------------------------------------
def routing_enabled() -> bool:
    """Whether ``sklearn.set_config(enable_metadata_routing=True)`` is in force."""
    return bool(get_config().get("enable_metadata_routing", False))


def metadata_router(wrapper: Any, calls: Mapping[str, str]) -> MetadataRouter:
    """The routing of a wrapper whose method ``caller`` calls the wrapped
    estimator's ``calls[caller]``; the wrapper's own requests (``score``'s
    ``sample_weight``, which it consumes itself) come first."""
    mapping = MethodMapping()
    for caller, callee in calls.items():
        mapping.add(caller=caller, callee=callee)
    return (
        MetadataRouter(owner=type(wrapper).__name__)
        .add_self_request(wrapper)
        .add(estimator=wrapper.estimator, method_mapping=mapping)
    )


def route(wrapper: Any, caller: str, callee: str, params: dict[str, Any]) -> dict:
    """The metadata that the wrapped estimator's ``callee`` gets when the
    wrapper's ``caller`` is given ``params``.

    With routing off, all of ``params`` (scikit-learn's behaviour before
    routing); with it on, only what the estimator requested, and
    scikit-learn's error for metadata nobody requested.
    """
    if not params or caller not in ROUTED_METHODS or not routing_enabled():
        return params
    return dict(process_routing(wrapper, caller, **params)["estimator"][callee])


# -- frozen estimators ---------------------------------------------------------------
def is_frozen(estimator: Any) -> bool:
    """Whether ``clone`` gives ``estimator`` itself back (``FrozenEstimator``):
    fitting it must not change it, and fitting a clone would.

    Examples
    --------
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LinearRegression
    >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    >>> is_frozen(model), is_frozen(FrozenEstimator(model))
    (False, True)
    """
    try:
        return clone(estimator) is estimator
    except TypeError:  # not an estimator: fitting it will say so
        return False
