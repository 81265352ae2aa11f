"""scikit-learn's conventions on the wrappers: the configuration inside dask's
tasks, ``sample_weight`` in the fit signature, and metadata routing."""

from __future__ import annotations

import inspect
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import IncrementalPCA
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.validation import has_fit_parameter

from incremental import Incremental, ParallelPostFit
from incremental._conventions import current_config, run_in_config

N, CHUNK = 400, 100


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    Xn = rng.normal(size=(N, 3))
    yn = (Xn[:, 0] > 0).astype(int)
    wn = rng.integers(1, 4, N).astype(float)
    return Xn, yn, wn


def blocks(*arrays):
    return [da.from_array(a, chunks=CHUNK) for a in arrays]


# -- scikit-learn's configuration inside dask's tasks ----------------------------
class ConfigSpy(ClassifierMixin, BaseEstimator):
    """Answers with scikit-learn's ``assume_finite`` setting where it runs."""

    def partial_fit(self, X, y, classes=None):
        self.seen_ = [
            *getattr(self, "seen_", []),
            sklearn.get_config()["assume_finite"],
        ]
        self.classes_ = np.array([0, 1])
        return self

    def fit(self, X, y):
        return self.partial_fit(X, y)

    def predict(self, X):
        return np.full(len(X), int(sklearn.get_config()["assume_finite"]))


def test_run_in_config_applies_the_captured_config_in_another_thread():
    with sklearn.config_context(assume_finite=True):
        config = current_config()
    with ThreadPoolExecutor(1) as pool:
        inside = pool.submit(
            run_in_config, config, lambda: sklearn.get_config()["assume_finite"]
        )
        outside = pool.submit(lambda: sklearn.get_config()["assume_finite"])
    assert inside.result() is True and outside.result() is False


def test_postfit_tasks_run_in_the_config_of_the_graph(data):
    Xn, yn, _ = data
    (X,) = blocks(Xn)
    model = ParallelPostFit(ConfigSpy()).fit(Xn, yn)
    with sklearn.config_context(assume_finite=True):
        lazy = model.predict(X)  # built here ...
        lazy_score = model.score(X, np.ones(N, dtype=int), compute=False)
    # ... computed outside the context, in the threaded scheduler's threads
    assert lazy.compute(scheduler="threads").tolist() == [1] * N
    assert float(lazy_score.compute(scheduler="threads")) == 1.0
    assert model.predict(X).compute(scheduler="threads").tolist() == [0] * N


def test_global_pandas_output_reaches_the_tasks(data):
    Xn, _, _ = data
    (X,) = blocks(Xn)
    with sklearn.config_context(transform_output="pandas"):
        scaler = ParallelPostFit(StandardScaler()).fit(Xn)
        out = scaler.transform(X)
    expected = StandardScaler().fit(Xn).transform(Xn)
    np.testing.assert_allclose(out.compute(scheduler="threads").to_numpy(), expected)


def test_partial_fit_runs_in_the_config_of_the_caller_on_a_cluster(data, client):
    Xn, yn, _ = data
    X, y = blocks(Xn, yn)
    with sklearn.config_context(assume_finite=True):
        model = Incremental(ConfigSpy(), shuffle_blocks=False).fit(X, y)
    assert model.seen_ == [True] * (N // CHUNK)


class ConfigCounter(BaseEstimator):
    """Mergeable: keeps the ``assume_finite`` setting each batch was fitted in,
    and counts the batches fitted outside the main thread."""

    def partial_fit(self, X, y=None):
        setting = sklearn.get_config()["assume_finite"]
        self.seen_ = [*getattr(self, "seen_", []), setting]
        elsewhere = threading.current_thread() is not threading.main_thread()
        self.fitted_in_threads_ = getattr(self, "fitted_in_threads_", 0) + elsewhere
        return self


def _merge_counters(a, b):
    merged = ConfigCounter()
    merged.seen_ = a.seen_ + b.seen_
    merged.fitted_in_threads_ = a.fitted_in_threads_ + b.fitted_in_threads_
    return merged


def _slowly(block):
    time.sleep(0.01)
    return block


def test_merged_fits_run_in_the_config_of_the_caller_in_reader_threads(data):
    from incremental import register_merge

    register_merge(ConfigCounter, _merge_counters)
    Xn, _, _ = data
    # Blocks that take a while to make, so that reader threads make (and fit) them.
    X = da.from_array(Xn, chunks=CHUNK).map_blocks(_slowly, dtype=float)
    with sklearn.config_context(assume_finite=True):
        model = Incremental(ConfigCounter(), merge=True, prefetch=4).fit(X)
    assert model.seen_ == [True] * (N // CHUNK)
    assert model.fitted_in_threads_ > 0


# -- sample_weight in the fit signature -----------------------------------------------
@pytest.mark.parametrize(
    "wrapper, expected",
    [
        (Incremental(SGDClassifier()), True),
        (Incremental(StandardScaler()), True),
        (Incremental(IncrementalPCA()), False),
        (Incremental(MinMaxScaler()), False),
        (ParallelPostFit(LogisticRegression()), True),
        (ParallelPostFit(IncrementalPCA()), False),
    ],
)
def test_has_fit_parameter_answers_for_the_estimator_inside(wrapper, expected):
    assert has_fit_parameter(wrapper, "sample_weight") is expected
    if hasattr(wrapper, "partial_fit"):
        shown = inspect.signature(wrapper.partial_fit).parameters
        assert ("sample_weight" in shown) is expected
    # the class keeps the whole signature, and copies behave the same
    assert "sample_weight" in inspect.signature(type(wrapper).fit).parameters
    for copy in (clone(wrapper), pickle.loads(pickle.dumps(wrapper))):
        assert has_fit_parameter(copy, "sample_weight") is expected


def test_fit_signature_keeps_the_docs(data):
    wrapper = Incremental(IncrementalPCA())
    assert wrapper.fit.__doc__ == Incremental.fit.__doc__
    assert wrapper.fit.__name__ == "fit"


def test_sample_weight_for_an_estimator_without_it_is_refused_before_reading(data):
    Xn, _, wn = data

    def unreadable(block):
        raise AssertionError("X was read")

    X = da.from_array(Xn, chunks=CHUNK).map_blocks(unreadable, dtype=float)
    with pytest.raises(TypeError, match="IncrementalPCA.partial_fit does not take"):
        Incremental(IncrementalPCA()).fit(X, sample_weight=wn)


# -- metadata routing --------------------------------------------------------------
def weighted_plain_loop(Xn, yn, wn):
    """The pipeline below, as plain partial_fit loops over the same blocks."""
    scaler = StandardScaler()
    for i in range(N // CHUNK):
        scaler.partial_fit(Xn[i * CHUNK : (i + 1) * CHUNK])
    model = SGDClassifier(random_state=0)
    for i in range(N // CHUNK):
        rows = slice(i * CHUNK, (i + 1) * CHUNK)
        model.partial_fit(
            scaler.transform(Xn[rows]), yn[rows], classes=[0, 1], sample_weight=wn[rows]
        )
    return scaler, model


def routed_pipeline():
    return Pipeline(
        [
            (
                "scale",
                Incremental(
                    StandardScaler().set_partial_fit_request(sample_weight=False),
                    shuffle_blocks=False,
                ),
            ),
            (
                "model",
                Incremental(
                    SGDClassifier(random_state=0).set_partial_fit_request(
                        sample_weight=True
                    ),
                    shuffle_blocks=False,
                ),
            ),
        ]
    )


def test_pipeline_routes_sample_weight_into_the_blocks_exactly(data):
    Xn, yn, wn = data
    X, y, w = blocks(Xn, yn, wn)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = routed_pipeline().fit(X, y, sample_weight=w)
    scaler, model = weighted_plain_loop(Xn, yn, wn)
    np.testing.assert_array_equal(pipe[0].mean_, scaler.mean_)
    np.testing.assert_array_equal(pipe[-1].coef_, model.coef_)
    np.testing.assert_array_equal(pipe[-1].intercept_, model.intercept_)
    unweighted = SGDClassifier(random_state=0)
    assert not np.array_equal(
        pipe[-1].coef_, unweighted.partial_fit(Xn, yn, classes=[0, 1]).coef_
    )


def test_without_routing_sample_weight_goes_to_partial_fit_as_before(data):
    Xn, yn, wn = data
    X, y, w = blocks(Xn, yn, wn)
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(X, y, sample_weight=w)
    reference = SGDClassifier(random_state=0)
    for i in range(N // CHUNK):
        rows = slice(i * CHUNK, (i + 1) * CHUNK)
        reference.partial_fit(
            Xn[rows], yn[rows], classes=[0, 1], sample_weight=wn[rows]
        )
    np.testing.assert_array_equal(model.coef_, reference.coef_)


def test_a_request_on_fit_is_not_the_request_incremental_needs(data):
    Xn, yn, wn = data
    X, y, w = blocks(Xn, yn, wn)
    with sklearn.config_context(enable_metadata_routing=True):
        asked_on_fit = SGDClassifier().set_fit_request(sample_weight=True)
        pipe = Pipeline([("model", Incremental(asked_on_fit))])
        with pytest.raises(
            UnsetMetadataPassedError, match=r"SGDClassifier\.partial_fit"
        ):
            pipe.fit(X, y, sample_weight=w)


def test_parallel_post_fit_routes_to_fit_and_is_refused_unrequested(data):
    Xn, yn, wn = data
    X, y, w = blocks(Xn, yn, wn)
    with sklearn.config_context(enable_metadata_routing=True):
        asked = LogisticRegression().set_fit_request(sample_weight=True)
        pipe = Pipeline([("model", ParallelPostFit(asked))]).fit(X, y, sample_weight=w)
        with pytest.raises(UnsetMetadataPassedError):
            Pipeline([("model", ParallelPostFit(LogisticRegression()))]).fit(
                X, y, sample_weight=w
            )
    expected = LogisticRegression().fit(Xn, yn, sample_weight=wn)
    np.testing.assert_allclose(pipe[-1].coef_, expected.coef_)


def test_score_weight_is_requested_on_the_wrapper(data):
    Xn, yn, wn = data
    X, y, w = blocks(Xn, yn, wn)
    model = ParallelPostFit(LogisticRegression()).fit(Xn, yn)
    with sklearn.config_context(enable_metadata_routing=True):
        model.set_score_request(sample_weight=True)
        got = Pipeline([("model", model)]).score(X, y, sample_weight=w)
    assert got == pytest.approx(model.estimator_.score(Xn, yn, sample_weight=wn))


def test_wrappers_advertise_no_fit_request_of_their_own():
    # They hand fit's metadata on: requests go on the estimator inside.
    for wrapper in (Incremental, ParallelPostFit):
        assert not hasattr(wrapper, "set_fit_request")
        assert not hasattr(wrapper, "set_partial_fit_request")
        assert hasattr(wrapper, "set_score_request")
    routing = Incremental(SGDClassifier()).get_metadata_routing()
    assert "validation_data" not in str(routing)
    assert "compute" not in str(routing)


def test_classes_given_directly_is_the_wrappers_own_with_routing_on(data):
    Xn, yn, _ = data
    X, y = blocks(Xn, yn)
    with sklearn.config_context(enable_metadata_routing=True):
        model = Incremental(SGDClassifier(random_state=0)).fit(X, y, classes=[0, 1])
    assert model.classes_.tolist() == [0, 1]


def test_routing_reaches_a_regressor_through_parallel_post_fit_partial_fit(data):
    Xn, yn, wn = data
    target = Xn @ np.array([1.0, 2.0, 3.0])
    with sklearn.config_context(enable_metadata_routing=True):
        inner = SGDRegressor(random_state=0).set_partial_fit_request(sample_weight=True)
        model = ParallelPostFit(inner).partial_fit(
            *blocks(Xn, target), sample_weight=da.from_array(wn, chunks=CHUNK)
        )
    expected = SGDRegressor(random_state=0).partial_fit(Xn, target, sample_weight=wn)
    np.testing.assert_array_equal(model.coef_, expected.coef_)
    assert dask.is_dask_collection(model) is False


class Flagged(ClassifierMixin, BaseEstimator):
    """``predict`` takes metadata: a value added to every prediction."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X, offset=0):
        return np.zeros(len(X), dtype=int) + offset


def test_predict_metadata_reaches_every_block_through_a_pipeline(data):
    Xn, yn, _ = data
    (X,) = blocks(Xn)
    with sklearn.config_context(enable_metadata_routing=True):
        asked = Flagged().set_predict_request(offset=True)
        pipe = Pipeline([("model", ParallelPostFit(asked))]).fit(Xn, yn)
        assert pipe.predict(X, offset=3).compute().tolist() == [3] * N
        with pytest.raises(UnsetMetadataPassedError):
            Pipeline([("model", ParallelPostFit(Flagged()))]).fit(Xn, yn).predict(
                X, offset=3
            )
    # without routing, keywords go to the estimator's method as they are
    assert ParallelPostFit(Flagged()).fit(Xn, yn).predict(X, offset=2).sum() == 2 * N
