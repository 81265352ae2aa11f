"""scikit-learn's own estimator checks on ``Incremental`` and ``ParallelPostFit``.

The rule: a wrapper passes every check its bare estimator passes, the
sample-weight checks included (the wrappers' ``fit`` shows ``sample_weight``
exactly when the estimator's takes it, so scikit-learn generates the same
ones). The exceptions are the three tables below, each with its reason:

==================================  =============================================
table                               what it holds
==================================  =============================================
``WRAPPER_ONLY_FAILURES``           checks the bare estimator passes and the
                                    wrapper fails by design (one epoch of
                                    ``partial_fit`` is not ``fit``'s many);
                                    ``test_listed_failures_pass_on_the_bare_
                                    estimator`` proves the bare one passes
``FAIL_ON_THE_BARE_ESTIMATOR_TOO``  checks the bare estimator fails as well
                                    (scikit-learn expects these failures of the
                                    estimator itself); ``test_bare_failures_
                                    fail_on_the_bare_estimator`` proves it
``NOT_APPLICABLE_TO_WRAPPERS``      checks scikit-learn generates only for the
                                    bare estimator and that cannot pass on a
                                    wrapper (they set the estimator's own
                                    parameters or call its own methods)
==================================  =============================================

``xfail_strict`` makes a listed check that starts to pass on the wrapper fail
the suite, so the tables cannot go stale.

scikit-learn picks the checks from the estimator's signature and type, so it
runs a few checks on the bare estimator that it does not generate for the
wrapper (the wrapper is not a ``ClusterMixin``, and has no ``class_weight``
parameter of its own). ``test_checks_generated_only_for_the_bare_estimator``
runs those on the wrapper too.
"""

from __future__ import annotations

import functools
from typing import Any
from unittest import SkipTest

import pytest
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import IncrementalPCA
from sklearn.linear_model import (
    LogisticRegression,
    Perceptron,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import (
    estimator_checks_generator,
    parametrize_with_checks,
)

from incremental import Incremental, ParallelPostFit

WRAPPERS = [
    Incremental(SGDClassifier(random_state=0)),
    Incremental(SGDRegressor(random_state=0)),
    Incremental(Perceptron(random_state=0)),
    Incremental(MultinomialNB()),
    Incremental(GaussianNB()),
    Incremental(MiniBatchKMeans(n_clusters=3, n_init=1, random_state=0)),
    Incremental(StandardScaler()),
    Incremental(MinMaxScaler()),
    Incremental(IncrementalPCA(n_components=2)),
    Incremental(MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, random_state=0)),
    Incremental(MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, random_state=0)),
    ParallelPostFit(LogisticRegression()),
]

_ONE_EPOCH = (
    "with the default max_epochs=1, Incremental.fit on in-memory data (one "
    "block) is one partial_fit call, a single epoch of Adam, where {name}.fit "
    "runs up to max_iter epochs (test_more_epochs_pass_the_training_checks)"
)

# Checks the bare estimator passes and its wrapper fails, by design.
WRAPPER_ONLY_FAILURES: dict[str, dict[str, str]] = {
    "MLPClassifier": {
        "check_classifiers_train": "needs accuracy > 0.83 after fit; "
        + _ONE_EPOCH.format(name="MLPClassifier"),
    },
    "MLPRegressor": {
        "check_regressors_train": "needs R^2 > 0.5 after fit; "
        + _ONE_EPOCH.format(name="MLPRegressor"),
    },
}

_NOT_REPEATING = (
    "a weight of 2 is not the same as the row twice for {what}; scikit-learn "
    "lists this check as an expected failure of {name} itself, and the wrapper "
    "fits the same way (one partial_fit over the one block)"
)
_SGD = "a stochastic solver (one update per row, so one doubled step differs from two steps)"
_MINIBATCH = "random mini-batches drawn from the rows, not from their weights"

# Checks that the bare estimator fails too, with the reason.
FAIL_ON_THE_BARE_ESTIMATOR_TOO: dict[str, dict[str, str]] = {
    name: {
        f"check_sample_weight_equivalence_on_{kind}_data": _NOT_REPEATING.format(
            what=what, name=name
        )
        for kind in ("dense", "sparse")
    }
    for name, what in [
        ("SGDClassifier", _SGD),
        ("SGDRegressor", _SGD),
        ("Perceptron", _SGD),
        ("MiniBatchKMeans", _MINIBATCH),
    ]
}

_PARAMETER = (
    "sets class_weight with set_params(class_weight=...); on the wrapper that "
    "parameter is estimator__class_weight"
)
# Checks that scikit-learn generates for a bare estimator but not for its
# wrapper, and that cannot pass on the wrapper, with the reason.
NOT_APPLICABLE_TO_WRAPPERS = {
    "check_sparsify_coefficients": (
        "sparsify() is a method of linear models that the wrapper does not "
        "forward (it forwards learned attributes and post-fit methods); it is "
        "reached as wrapper.estimator_.sparsify()"
    ),
    "check_class_weight_classifiers": _PARAMETER,
    "check_class_weight_balanced_linear_classifier": _PARAMETER,
}


def expected_failed_checks(wrapper: Any) -> dict[str, str]:
    name = type(wrapper.estimator).__name__
    return {
        **WRAPPER_ONLY_FAILURES.get(name, {}),
        **FAIL_ON_THE_BARE_ESTIMATOR_TOO.get(name, {}),
    }


@parametrize_with_checks(
    WRAPPERS, expected_failed_checks=expected_failed_checks, xfail_strict=True
)
def test_wrapper_passes_sklearn_checks(estimator, check):
    check(estimator)


# -- the exceptions are honest -------------------------------------------------


def _check_name(check: Any) -> str:
    return (check.func if isinstance(check, functools.partial) else check).__name__


def _check_id(check: Any) -> str:
    keywords = getattr(check, "keywords", {})
    options = ",".join(f"{k}={v}" for k, v in sorted(keywords.items()))
    return _check_name(check) + (f"({options})" if options else "")


def _wrapper_id(wrapper: Any) -> str:
    return f"{type(wrapper).__name__}({type(wrapper.estimator).__name__})"


def _checks(estimator: Any) -> list[Any]:
    return [check for _, check in estimator_checks_generator(estimator)]


def _wrapper_by_estimator(name: str) -> Any:
    (wrapper,) = [w for w in WRAPPERS if type(w.estimator).__name__ == name]
    return wrapper


@pytest.mark.parametrize(
    "table", [WRAPPER_ONLY_FAILURES, FAIL_ON_THE_BARE_ESTIMATOR_TOO]
)
def test_failure_lists_name_wrapped_estimators_and_real_checks(table):
    for name, failures in table.items():
        wrapper = _wrapper_by_estimator(name)
        names = {_check_name(check) for check in _checks(wrapper)}
        assert set(failures) <= names, (name, set(failures) - names)
        assert all(len(reason) > 40 for reason in failures.values())


def _listed(table: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    return [(est, check) for est, checks in table.items() for check in checks]


def _bare_checks(estimator_name: str, check_name: str) -> tuple[Any, list[Any]]:
    bare = _wrapper_by_estimator(estimator_name).estimator
    checks = [c for c in _checks(bare) if _check_name(c) == check_name]
    assert checks, f"{estimator_name} is not given {check_name}"
    return bare, checks


@pytest.mark.parametrize("estimator_name, check_name", _listed(WRAPPER_ONLY_FAILURES))
def test_listed_failures_pass_on_the_bare_estimator(estimator_name, check_name):
    bare, checks = _bare_checks(estimator_name, check_name)
    for check in checks:
        check(clone(bare))


@pytest.mark.parametrize(
    "estimator_name, check_name", _listed(FAIL_ON_THE_BARE_ESTIMATOR_TOO)
)
def test_bare_failures_fail_on_the_bare_estimator(estimator_name, check_name):
    bare, checks = _bare_checks(estimator_name, check_name)
    for check in checks:
        with pytest.raises(AssertionError):
            check(clone(bare))


SAMPLE_WEIGHT_CHECKS = {
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
    "check_all_zero_sample_weights_error",
    "check_sample_weight_equivalence_on_dense_data",
    "check_sample_weight_equivalence_on_sparse_data",
}


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=lambda w: _wrapper_id(w))
def test_the_same_sample_weight_checks_are_generated(wrapper):
    def generated(estimator):
        return {_check_name(c) for c in _checks(estimator)} & SAMPLE_WEIGHT_CHECKS

    bare = generated(wrapper.estimator)
    assert generated(wrapper) == bare
    takes = type(wrapper.estimator).__name__ not in {"MinMaxScaler", "IncrementalPCA"}
    assert bool(bare) == takes


def _bare_only_checks() -> list[Any]:
    params = []
    for wrapper in WRAPPERS:
        generated = {_check_name(check) for check in _checks(wrapper)}
        for check in _checks(wrapper.estimator):
            name = _check_name(check)
            if name in generated:
                continue
            marks = ()
            if name in NOT_APPLICABLE_TO_WRAPPERS:
                marks = pytest.mark.xfail(
                    strict=True, reason=NOT_APPLICABLE_TO_WRAPPERS[name]
                )
            params.append(
                pytest.param(
                    wrapper,
                    check,
                    marks=marks,
                    id=f"{_wrapper_id(wrapper)}-{_check_id(check)}",
                )
            )
    return params


@pytest.mark.parametrize("wrapper, check", _bare_only_checks())
def test_checks_generated_only_for_the_bare_estimator(wrapper, check):
    try:
        check(clone(wrapper))
    except SkipTest:
        raise
    except Exception:
        if _check_name(check) in NOT_APPLICABLE_TO_WRAPPERS:
            raise
        try:
            check(clone(wrapper.estimator))
        except SkipTest:
            raise
        except Exception:
            pytest.xfail("the bare estimator fails this check too")
        raise


@pytest.mark.parametrize(
    "estimator_name, check_name",
    [
        ("MLPClassifier", "check_classifiers_train"),
        ("MLPRegressor", "check_regressors_train"),
    ],
)
def test_more_epochs_pass_the_training_checks(estimator_name, check_name):
    # The listed MLP failures are one epoch's worth of training, not a wrapper
    # defect: more epochs over the same single block pass the check.
    wrapper = clone(_wrapper_by_estimator(estimator_name))
    wrapper.set_params(max_epochs=100, shuffle_blocks=False)
    (check,) = [c for c in _checks(wrapper) if _check_id(c) == check_name]
    check(wrapper)
