"""Every scikit-learn estimator with ``partial_fit``, fitted through ``Incremental``.

For each one: ``fit`` on a dask array gives the same estimator state, bit for
bit, as the plain ``partial_fit`` loop over the NumPy blocks (in storage order
and in the shuffled order drawn from ``random_state``); every post-fit method
runs lazily block by block and equals the estimator's own output; learned
attributes read through the wrapper. A scikit-learn release that adds an
estimator with ``partial_fit`` makes ``test_every_partial_fit_estimator_has_a_case``
fail until a case is added here.
"""

from __future__ import annotations

import inspect
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.cluster import Birch, MiniBatchKMeans
from sklearn.decomposition import (
    IncrementalPCA,
    LatentDirichletAllocation,
    MiniBatchDictionaryLearning,
    MiniBatchNMF,
)
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import (
    PassiveAggressiveClassifier,
    PassiveAggressiveRegressor,
    Perceptron,
    SGDClassifier,
    SGDOneClassSVM,
    SGDRegressor,
)
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.multioutput import MultiOutputClassifier, MultiOutputRegressor
from sklearn.naive_bayes import (
    BernoulliNB,
    CategoricalNB,
    ComplementNB,
    GaussianNB,
    MultinomialNB,
)
from sklearn.neural_network import BernoulliRBM, MLPClassifier, MLPRegressor
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.utils import all_estimators, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from incremental import Incremental

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Class PassiveAggressive.* is deprecated:FutureWarning"
    ),
    # SGDClassifier(loss="modified_huber").predict_log_proba of a 0 probability
    pytest.mark.filterwarnings("ignore:divide by zero encountered in log"),
]

N_ROWS, N_FEATURES, BLOCK_ROWS = 160, 5, 40
N_BLOCKS = N_ROWS // BLOCK_ROWS
SHUFFLE_SEED = 0

# The post-fit methods of DESIGN.md's contract, written out here rather than
# imported, so that the package cannot drop one unnoticed.
POSTFIT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "inverse_transform",
    "score_samples",
)

# Methods whose output for a row depends on the other rows passed with it, so
# blockwise output equals the estimator's output on each block, not on all rows.
BATCH_DEPENDENT = {
    ("MiniBatchNMF", "transform"): "W starts at sqrt(mean(X) / k) of the batch "
    "and the regularisation is scaled by the batch size",
    ("BernoulliRBM", "score_samples"): "corrupts one random feature per row, "
    "drawn afresh from random_state on each call",
}


# -- the cases -------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """How to build one estimator and which data it learns from.

    ``data``: "real" (normal), "nonnegative" (|normal|), "counts" (Poisson),
    "categories" (small integers), "unit" (uniform in [0, 1]) or "text".
    ``target``: None (unsupervised), "classes", "classes_2d", "values" or
    "values_2d".
    """

    make: Callable[[], Any]
    data: str = "real"
    target: str | None = None


def _quiet(factory: Callable[[], Any]) -> Callable[[], Any]:
    """``factory`` with scikit-learn's deprecation warnings silenced."""

    def make():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return factory()

    return make


CASES: dict[str, Case] = {
    "BernoulliNB": Case(BernoulliNB, target="classes"),
    "BernoulliRBM": Case(
        lambda: BernoulliRBM(n_components=3, batch_size=10, random_state=0),
        data="unit",
    ),
    "Birch": Case(lambda: Birch(n_clusters=3, threshold=0.8)),
    "CategoricalNB": Case(CategoricalNB, data="categories", target="classes"),
    "ComplementNB": Case(ComplementNB, data="nonnegative", target="classes"),
    "GaussianNB": Case(GaussianNB, target="classes"),
    "HashingVectorizer": Case(lambda: HashingVectorizer(n_features=64), data="text"),
    "IncrementalPCA": Case(lambda: IncrementalPCA(n_components=3)),
    "LatentDirichletAllocation": Case(
        lambda: LatentDirichletAllocation(n_components=3, random_state=0),
        data="counts",
    ),
    "MLPClassifier": Case(
        lambda: MLPClassifier(hidden_layer_sizes=(8,), batch_size=16, random_state=0),
        target="classes",
    ),
    "MLPRegressor": Case(
        lambda: MLPRegressor(hidden_layer_sizes=(8,), batch_size=16, random_state=0),
        target="values",
    ),
    "MaxAbsScaler": Case(MaxAbsScaler),
    "MinMaxScaler": Case(MinMaxScaler),
    "MiniBatchDictionaryLearning": Case(
        lambda: MiniBatchDictionaryLearning(
            n_components=3, batch_size=16, random_state=0
        )
    ),
    "MiniBatchKMeans": Case(
        lambda: MiniBatchKMeans(n_clusters=3, batch_size=16, n_init=1, random_state=0)
    ),
    "MiniBatchNMF": Case(
        lambda: MiniBatchNMF(n_components=3, batch_size=16, random_state=0),
        data="nonnegative",
    ),
    "MultiOutputClassifier": Case(
        lambda: MultiOutputClassifier(SGDClassifier(loss="log_loss", random_state=0)),
        target="classes_2d",
    ),
    "MultiOutputRegressor": Case(
        lambda: MultiOutputRegressor(SGDRegressor(random_state=0)),
        target="values_2d",
    ),
    "MultinomialNB": Case(MultinomialNB, data="nonnegative", target="classes"),
    "OneVsOneClassifier": Case(
        lambda: OneVsOneClassifier(SGDClassifier(random_state=0)), target="classes"
    ),
    "OneVsRestClassifier": Case(
        lambda: OneVsRestClassifier(SGDClassifier(loss="log_loss", random_state=0)),
        target="classes",
    ),
    "PassiveAggressiveClassifier": Case(
        _quiet(lambda: PassiveAggressiveClassifier(random_state=0)), target="classes"
    ),
    "PassiveAggressiveRegressor": Case(
        _quiet(lambda: PassiveAggressiveRegressor(random_state=0)), target="values"
    ),
    "Perceptron": Case(lambda: Perceptron(random_state=0), target="classes"),
    "SGDClassifier": Case(
        lambda: SGDClassifier(loss="modified_huber", random_state=0),
        target="classes",
    ),
    "SGDOneClassSVM": Case(lambda: SGDOneClassSVM(random_state=0)),
    "SGDRegressor": Case(lambda: SGDRegressor(random_state=0), target="values"),
    "SelectFromModel": Case(
        lambda: SelectFromModel(SGDClassifier(random_state=0)), target="classes"
    ),
    "StandardScaler": Case(StandardScaler),
}


def _partial_fit_estimators() -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return {name for name, cls in all_estimators() if hasattr(cls, "partial_fit")}


PARTIAL_FIT_ESTIMATORS = _partial_fit_estimators()


def test_every_partial_fit_estimator_has_a_case():
    assert len(PARTIAL_FIT_ESTIMATORS) >= 29
    assert set(CASES) == PARTIAL_FIT_ESTIMATORS, (
        f"missing cases: {sorted(PARTIAL_FIT_ESTIMATORS - set(CASES))}; "
        f"stale cases: {sorted(set(CASES) - PARTIAL_FIT_ESTIMATORS)}"
    )


def _case(name: str) -> Case:
    if name not in CASES:
        pytest.fail(f"scikit-learn's {name} has partial_fit but no case here")
    if name not in PARTIAL_FIT_ESTIMATORS:
        pytest.fail(f"{name} is no longer a scikit-learn estimator with partial_fit")
    case = CASES[name]
    assert type(case.make()).__name__ == name
    return case


ALL_NAMES = sorted(PARTIAL_FIT_ESTIMATORS | set(CASES))


# -- data ------------------------------------------------------------------


def make_X(kind: str) -> np.ndarray:
    rng = np.random.RandomState(0)
    shape = (N_ROWS, N_FEATURES)
    if kind == "real":
        return rng.normal(size=shape)
    if kind == "nonnegative":
        return np.abs(rng.normal(size=shape))
    if kind == "counts":
        return rng.poisson(2.0, size=shape).astype(float)
    if kind == "categories":
        return rng.randint(0, 4, size=shape)
    if kind == "unit":
        return rng.uniform(size=shape)
    if kind == "text":
        words = np.array(["dask", "block", "array", "fit", "model", "chunk", "row"])
        return np.array(
            [
                " ".join(rng.choice(words, size=rng.randint(1, 6)))
                for _ in range(N_ROWS)
            ],
            dtype=object,
        )
    raise ValueError(kind)


def make_y(kind: str | None, X: np.ndarray) -> np.ndarray | None:
    if kind is None:
        return None
    rng = np.random.RandomState(1)
    signal = np.asarray(X, dtype=float) @ rng.normal(size=(X.shape[1], 2))
    if kind.startswith("classes"):
        # Three classes cycled by row, so that every block holds all of them,
        # and shifted by the data, so that the two columns differ.
        labels = (np.arange(N_ROWS)[:, None] + (signal > np.median(signal, axis=0))) % 3
        return labels if kind == "classes_2d" else labels[:, 0]
    values = signal + 0.1 * rng.normal(size=signal.shape)
    return values if kind == "values_2d" else values[:, 0]


@dataclass
class Data:
    X: np.ndarray
    y: np.ndarray | None
    X_dask: da.Array
    y_dask: da.Array | None

    def blocks(self) -> list[tuple[np.ndarray, np.ndarray | None]]:
        bounds = range(0, len(self.X), BLOCK_ROWS)
        return [
            (
                self.X[i : i + BLOCK_ROWS],
                None if self.y is None else self.y[i : i + BLOCK_ROWS],
            )
            for i in bounds
        ]


def make_data(case: Case) -> Data:
    X = make_X(case.data)
    y = make_y(case.target, X)
    X_dask = da.from_array(X, chunks=(BLOCK_ROWS,) + X.shape[1:])
    y_dask = None if y is None else da.from_array(y, chunks=(BLOCK_ROWS,) + y.shape[1:])
    return Data(X, y, X_dask, y_dask)


# -- the plain loop that Incremental must reproduce --------------------------


def _takes_classes(estimator: Any, case: Case) -> bool:
    """Whether ``partial_fit`` accepts ``classes``: as a named parameter, or
    through ``**kwargs`` that a meta-estimator (SelectFromModel) hands to its
    classifier."""
    parameters = inspect.signature(estimator.partial_fit).parameters.values()
    if any(p.name == "classes" for p in parameters):
        return True
    forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return forwards and case.target is not None and case.target.startswith("classes")


def plain_loop(case: Case, data: Data, order) -> Any:
    estimator = case.make()
    kwargs = {}
    if data.y is not None and _takes_classes(estimator, case):
        if isinstance(estimator, MultiOutputClassifier):
            kwargs["classes"] = [np.unique(column) for column in data.y.T]
        else:
            kwargs["classes"] = np.unique(data.y)
    blocks = data.blocks()
    for i in order:
        Xb, yb = blocks[i]
        if yb is None:
            estimator.partial_fit(Xb, **kwargs)
        else:
            estimator.partial_fit(Xb, yb, **kwargs)
    return estimator


def fit_incremental(case: Case, data: Data, **params) -> Incremental:
    wrapper = Incremental(case.make(), **params)
    if data.y_dask is None:
        return wrapper.fit(data.X_dask)
    return wrapper.fit(data.X_dask, data.y_dask)


# -- comparing two estimators' state, bit for bit ----------------------------


def _fitted_names(obj: Any) -> list[str]:
    return sorted(n for n in vars(obj) if n.endswith("_") and not n.startswith("__"))


def assert_same_state(a: Any, b: Any, where: str = "estimator_", seen=None) -> None:
    """Assert that ``a`` and ``b`` hold the same state, bit for bit.

    Estimators and other objects are compared on all their attributes: the
    fitted ones (names ending in ``_``), and private state such as random
    generators and optimiser moments that the next ``partial_fit`` would use;
    recursively through lists, tuples, dicts and object arrays. NumPy arrays
    must have the same dtype, shape and values.
    """
    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:  # shared or cyclic (Birch's leaf links)
        return
    seen.add((id(a), id(b)))
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, BaseEstimator):
        assert _fitted_names(a) == _fitted_names(b), f"{where}: fitted attributes"
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        if a.dtype == object:
            for i, (x, y) in enumerate(zip(a.ravel(), b.ravel())):
                assert_same_state(x, y, f"{where}.flat[{i}]", seen)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    elif sp.issparse(a):
        assert (a.format, a.dtype, a.shape) == (b.format, b.dtype, b.shape), where
        np.testing.assert_array_equal(a.toarray(), b.toarray(), err_msg=where)
    elif isinstance(a, np.random.RandomState):
        assert_same_state(a.get_state(), b.get_state(), f"{where}.get_state()", seen)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]", seen)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]", seen)
    elif isinstance(a, (float, np.floating)):
        assert a == b or (np.isnan(a) and np.isnan(b)), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, (str, bytes, int, bool, complex, type(None), np.generic, type)):
        assert a == b, f"{where}: {a!r} != {b!r}"
    elif hasattr(a, "__dict__") and not callable(a):
        assert vars(a).keys() == vars(b).keys(), where
        for name in vars(a):
            assert_same_state(
                getattr(a, name), getattr(b, name), f"{where}.{name}", seen
            )
    else:  # opaque objects (compiled loss functions, ...): same pickled bytes
        assert pickle.dumps(a) == pickle.dumps(b), where


# -- (a) exactness ----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_fit_equals_the_plain_partial_fit_loop(name):
    case = _case(name)
    data = make_data(case)

    in_order = fit_incremental(case, data, shuffle_blocks=False)
    assert in_order.n_blocks_seen_ == N_BLOCKS
    assert_same_state(in_order.estimator_, plain_loop(case, data, range(N_BLOCKS)))

    order = check_random_state(SHUFFLE_SEED).permutation(N_BLOCKS)
    assert not np.array_equal(order, np.arange(N_BLOCKS))  # a real shuffle
    shuffled = fit_incremental(
        case, data, shuffle_blocks=True, random_state=SHUFFLE_SEED
    )
    assert_same_state(shuffled.estimator_, plain_loop(case, data, order))


def test_state_comparison_sees_a_one_ulp_difference():
    case = CASES["SGDRegressor"]
    data = make_data(case)
    a = plain_loop(case, data, range(N_BLOCKS))
    b = plain_loop(case, data, range(N_BLOCKS))
    assert_same_state(a, b)
    b.coef_[0] = np.nextafter(b.coef_[0], np.inf)
    with pytest.raises(AssertionError, match="coef_"):
        assert_same_state(a, b)
    c = plain_loop(case, data, [1, 0, 2, 3])
    with pytest.raises(AssertionError):
        assert_same_state(a, c)


CLASSIFIER_NAMES = sorted(
    n for n, c in CASES.items() if c.target and c.target.startswith("classes")
)


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_partial_fit_continues_on_blocks_that_lack_a_class(name):
    # classes are needed on the first partial_fit only: later blocks may lack
    # some, and meta-estimators keep no classes_ of their own to pass again.
    case = _case(name)
    data = make_data(case)
    first = slice(0, 2 * BLOCK_ROWS)
    rest = np.arange(2 * BLOCK_ROWS, N_ROWS)
    rest = rest[(data.y[rest].reshape(len(rest), -1) != 2).all(axis=1)]

    wrapper = Incremental(case.make(), shuffle_blocks=False)
    wrapper.partial_fit(data.X_dask[first], data.y_dask[first])
    wrapper.partial_fit(da.from_array(data.X[rest]), da.from_array(data.y[rest]))

    head = Data(data.X[first], data.y[first], None, None)
    plain = plain_loop(case, head, range(2))
    kwargs = {}
    if _takes_classes(plain, case):
        kwargs["classes"] = (
            [np.unique(c) for c in data.y.T]
            if isinstance(plain, MultiOutputClassifier)
            else np.unique(data.y)
        )
    plain.partial_fit(data.X[rest], data.y[rest], **kwargs)
    assert wrapper.n_blocks_seen_ == 3
    assert_same_state(wrapper.estimator_, plain)


# -- (b) post-fit methods -----------------------------------------------------


def _expected(estimator: Any, name: str, method: str, X: np.ndarray) -> Any:
    """``estimator.method`` on all of X, or block by block where it depends on
    the batch (see ``BATCH_DEPENDENT``)."""
    if (name, method) not in BATCH_DEPENDENT:
        return getattr(estimator, method)(X)
    parts = [
        getattr(estimator, method)(X[i : i + BLOCK_ROWS])
        for i in range(0, N_ROWS, BLOCK_ROWS)
    ]
    return np.concatenate(parts)


def _assert_lazy_equal(out: Any, expected: Any, where: str) -> None:
    assert isinstance(out, da.Array), f"{where}: {type(out).__name__} is not lazy"
    assert type(out._meta) is type(expected), where
    assert out.shape == expected.shape, where
    assert out.chunks[0] == (BLOCK_ROWS,) * N_BLOCKS, where
    assert out.chunks[1:] == tuple((n,) for n in expected.shape[1:]), where
    assert out.dtype == expected.dtype, where
    result = out.compute()
    assert type(result) is type(expected), where
    if sp.issparse(expected):
        result, expected = result.toarray(), expected.toarray()
    if expected.dtype.kind in "fc":
        # Exact here; a BLAS may round a product differently for other shapes.
        finite = np.abs(expected[np.isfinite(expected)])
        scale = float(np.max(finite, initial=1.0))
        np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12 * scale)
    else:
        np.testing.assert_array_equal(result, expected, strict=True)


def _fitted_in_order(name: str) -> tuple[Case, Data, Incremental]:
    case = _case(name)
    data = make_data(case)
    return case, data, fit_incremental(case, data, shuffle_blocks=False)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_postfit_methods_run_blockwise(name):
    _, data, wrapper = _fitted_in_order(name)
    fitted = wrapper.estimator_

    for method in POSTFIT_METHODS:
        assert hasattr(wrapper, method) == hasattr(fitted, method), method
    available = [m for m in POSTFIT_METHODS if hasattr(fitted, m)]
    assert available, f"{name} has none of {POSTFIT_METHODS}"

    for method in available:
        X_in, X_np = data.X_dask, data.X
        if method == "inverse_transform":
            X_in = wrapper.transform(data.X_dask)
            X_np = _expected(fitted, name, "transform", data.X)
            expected = fitted.inverse_transform(X_np)
        else:
            expected = _expected(fitted, name, method, X_np)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = getattr(wrapper, method)(X_in)
        assert not caught, [str(w.message) for w in caught]  # nothing computed yet
        if isinstance(expected, list):  # multi-output predict_proba
            assert isinstance(out, list) and len(out) == len(expected), method
            for j, (o, e) in enumerate(zip(out, expected)):
                _assert_lazy_equal(o, e, f"{name}.{method}[{j}]")
        else:
            _assert_lazy_equal(out, expected, f"{name}.{method}")


# -- (c) learned attributes ---------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
def test_learned_attributes_read_through_the_wrapper(name):
    _, _, wrapper = _fitted_in_order(name)
    fitted = wrapper.estimator_
    check_is_fitted(wrapper)

    # The wrapper's own attributes (estimator_, n_blocks_seen_) come first;
    # SelectFromModel's estimator_ is read as wrapper.estimator_.estimator_.
    learned = [
        n
        for n in _fitted_names(fitted)
        if not n.startswith("_") and n not in vars(wrapper)
    ]
    for attribute in learned:
        assert getattr(wrapper, attribute) is getattr(fitted, attribute), attribute
    assert hasattr(wrapper, "n_features_in_") == hasattr(fitted, "n_features_in_")
    if hasattr(fitted, "n_features_in_"):
        assert wrapper.n_features_in_ == N_FEATURES
    # Properties (MultiOutputClassifier's classes_, ...) read through too.
    for attribute in ("classes_", "n_features_in_", "feature_names_in_"):
        assert hasattr(wrapper, attribute) == hasattr(fitted, attribute), attribute
    assert not hasattr(wrapper, "no_such_attribute_")


# -- a third-party estimator -----------------------------------------------------


class RunningMeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the running mean of y, plus ``shift``; learns with partial_fit."""

    def __init__(self, shift: float = 0.0):
        self.shift = shift

    def partial_fit(self, X, y):
        first = not hasattr(self, "n_samples_seen_")
        X, y = validate_data(self, X, y, reset=first)
        if first:
            self.n_samples_seen_, self.mean_ = 0, 0.0
        self.n_samples_seen_ += len(y)
        self.mean_ += (y.sum() - len(y) * self.mean_) / self.n_samples_seen_
        return self

    def fit(self, X, y):
        for name in ("n_samples_seen_", "mean_"):
            self.__dict__.pop(name, None)
        return self.partial_fit(X, y)

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.full(X.shape[0], self.mean_ + self.shift)


def test_third_party_estimator():
    data = make_data(Case(RunningMeanRegressor, target="values"))
    order = check_random_state(SHUFFLE_SEED).permutation(N_BLOCKS)
    wrapper = Incremental(RunningMeanRegressor(shift=1.0), random_state=SHUFFLE_SEED)
    assert wrapper.fit(data.X_dask, data.y_dask) is wrapper

    plain = RunningMeanRegressor(shift=1.0)
    for i in order:
        plain.partial_fit(*data.blocks()[i])
    assert_same_state(wrapper.estimator_, plain)
    assert wrapper.n_samples_seen_ == N_ROWS
    assert wrapper.n_features_in_ == N_FEATURES
    np.testing.assert_allclose(wrapper.mean_, data.y.mean(), rtol=1e-12)

    assert hasattr(wrapper, "predict") and not hasattr(wrapper, "transform")
    prediction = wrapper.predict(data.X_dask)
    _assert_lazy_equal(prediction, plain.predict(data.X), "predict")
    assert wrapper.get_params()["estimator__shift"] == 1.0
    assert clone(wrapper).estimator.shift == 1.0
    assert wrapper.score(data.X_dask, data.y_dask) == pytest.approx(
        plain.score(data.X, data.y), rel=1e-12
    )
