import dask.array as da
import numpy as np
import pytest
from dask.callbacks import Callback
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import PCA, LatentDirichletAllocation
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.metrics import accuracy_score, get_scorer, make_scorer

from incremental import STREAMING_METRICS, Incremental, ParallelPostFit
from incremental._scoring import score


@pytest.fixture
def classification():
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(700, 4))
    yn = (Xn[:, 0] + rng.normal(scale=0.5, size=700) > 0).astype(int)
    return Xn, yn, LogisticRegression().fit(Xn, yn)


@pytest.fixture
def regression():
    rng = np.random.default_rng(4)
    Xn = rng.normal(size=(700, 4))
    Y = Xn @ rng.normal(size=(4, 2)) + rng.normal(size=(700, 2))
    return Xn, Y, LinearRegression().fit(Xn, Y)


WEIGHTS = [None, np.linspace(0.1, 3, 700)]


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("name", ["accuracy", "neg_log_loss"])
def test_classification_metrics_match_scikit_learn(classification, name, weights):
    Xn, yn, model = classification
    X, y = da.from_array(Xn, chunks=90), da.from_array(yn, chunks=130)
    w = None if weights is None else da.from_array(weights, chunks=50)
    extra = {} if weights is None else {"sample_weight": weights}
    expected = get_scorer(name)(model, Xn, yn, **extra)
    assert score(model, X, y, w, scoring=name) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize(
    "name",
    [
        "r2",
        "neg_mean_squared_error",
        "neg_root_mean_squared_error",
        "neg_mean_absolute_error",
    ],
)
@pytest.mark.parametrize("outputs", [1, 2])
def test_regression_metrics_match_scikit_learn(regression, name, weights, outputs):
    Xn, Y, _ = regression
    Y = Y[:, 0] if outputs == 1 else Y
    model = LinearRegression().fit(Xn, Y)
    X, y = da.from_array(Xn, chunks=90), da.from_array(Y, chunks=130)
    extra = {} if weights is None else {"sample_weight": weights}
    expected = get_scorer(name)(model, Xn, Y, **extra)
    assert score(model, X, y, weights, scoring=name) == pytest.approx(
        expected, rel=1e-10
    )


def test_r2_stays_accurate_for_a_large_mean(regression):
    Xn, Y, _ = regression
    y = Y[:, 0] + 1e9
    model = LinearRegression().fit(Xn, y)
    expected = model.score(Xn, y)
    got = score(model, da.from_array(Xn, chunks=70), da.from_array(y, chunks=70))
    assert got == pytest.approx(expected, abs=1e-9)


def test_every_streaming_metric_is_tested():
    assert set(STREAMING_METRICS) == {
        "accuracy",
        "neg_log_loss",
        "r2",
        "neg_mean_squared_error",
        "neg_root_mean_squared_error",
        "neg_mean_absolute_error",
    }


@pytest.mark.parametrize(
    "estimator",
    [MiniBatchKMeans(n_clusters=3, n_init=1, random_state=0), PCA(n_components=2)],
)
def test_default_metric_of_unsupervised_estimators(classification, estimator):
    Xn, _, _ = classification
    model = ParallelPostFit(estimator).fit(Xn)
    expected = model.estimator_.score(Xn)
    assert model.score(da.from_array(Xn, chunks=100)) == pytest.approx(
        expected, rel=1e-10
    )


def test_score_that_cannot_be_streamed_says_so(classification):
    Xn, _, _ = classification
    model = ParallelPostFit(LatentDirichletAllocation(n_components=2, random_state=0))
    model.fit(np.abs(Xn))
    with pytest.raises(
        TypeError, match="cannot be computed block by block; pass scoring="
    ):
        model.score(da.from_array(np.abs(Xn), chunks=100))


def test_other_scorers_fall_back_to_gathering_predictions(classification):
    Xn, yn, model = classification
    X, y = da.from_array(Xn, chunks=90), da.from_array(yn, chunks=90)
    for name in ["f1", "roc_auc", "balanced_accuracy"]:
        assert score(model, X, y, scoring=name) == pytest.approx(
            get_scorer(name)(model, Xn, yn)
        )


class LargestResult(Callback):
    """Records the largest array any task produced."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.largest = max(self.largest, getattr(result, "nbytes", 0))


def test_streaming_score_never_gathers_x(classification):
    Xn, yn, model = classification
    X, y = da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)
    with LargestResult() as seen:
        score(model, X, y, scoring="accuracy")
    block_bytes = 100 * 4 * 8
    assert 0 < seen.largest <= block_bytes


def test_streaming_score_puts_the_estimator_in_the_graph_once(classification):
    import dask

    Xn, yn, model = classification
    graphs = []

    def recording_get(dsk, keys, **kwargs):
        graphs.append(dsk)
        return dask.get(dsk, keys, **kwargs)

    X, y = da.from_array(Xn, chunks=10), da.from_array(yn, chunks=10)  # 70 blocks
    with dask.config.set(scheduler=recording_get):
        score(model, X, y, scoring="accuracy")
    graph = graphs[-1]
    # One graph value is the model; the 70 tasks refer to it by key, so a
    # distributed scheduler ships it once, not once per task.
    assert sum(value is model for value in graph.values()) == 1
    tasks = [v for v in graph.values() if isinstance(v, tuple)]
    assert len(tasks) == 70
    assert not any(any(part is model for part in task) for task in tasks)


# -- lazy scores -------------------------------------------------------------------
class CountingComputes(Callback):
    def __init__(self):
        super().__init__()
        self.tasks = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        self.tasks += 1


@pytest.mark.parametrize("scoring", [None, "accuracy", "neg_log_loss"])
def test_compute_false_gives_a_lazy_0d_array_of_the_same_score(classification, scoring):
    Xn, yn, model = classification
    wrapper = ParallelPostFit(model, scoring=scoring)
    X, y = da.from_array(Xn, chunks=90), da.from_array(yn, chunks=130)
    with CountingComputes() as counted:
        lazy = wrapper.score(X, y, compute=False)
    assert counted.tasks == 0
    assert isinstance(lazy, da.Array) and lazy.shape == () and lazy.dtype == float
    assert float(lazy.compute()) == wrapper.score(X, y)


def test_lazy_scores_compute_together(classification):
    import dask

    Xn, yn, model = classification
    X, y = da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)
    weights = da.from_array(np.linspace(0.1, 3, 700), chunks=100)
    plain, weighted = dask.compute(
        ParallelPostFit(model).score(X, y, compute=False),
        ParallelPostFit(model).score(X, y, weights, compute=False),
    )
    assert plain == pytest.approx(model.score(Xn, yn))
    assert weighted == pytest.approx(
        model.score(Xn, yn, sample_weight=weights.compute())
    )


def test_compute_is_keyword_only_and_lazy_only_where_it_streams(classification):
    Xn, yn, model = classification
    X, y = da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)
    wrapper = ParallelPostFit(model)
    with pytest.raises(TypeError):
        wrapper.score(X, y, None, False)
    with pytest.raises(ValueError, match=r"compute=False\) needs a metric reduced"):
        ParallelPostFit(model, scoring="roc_auc").score(X, y, compute=False)
    # In-memory input is scored at once, as dask-ml does.
    assert wrapper.score(Xn, yn, compute=False) == model.score(Xn, yn)


# -- scoring checked at fit ------------------------------------------------------------
def metric_like_dask_ml(y_true, y_pred, normalize=True, sample_weight=None):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


@pytest.mark.parametrize("wrapper_class", [ParallelPostFit, Incremental])
@pytest.mark.parametrize("metric", [accuracy_score, metric_like_dask_ml])
def test_a_metric_function_is_refused_at_fit(classification, wrapper_class, metric):
    Xn, yn, _ = classification
    wrapper = wrapper_class(SGDClassifier(), scoring=metric)
    with pytest.raises(
        ValueError, match="metric function rather than a scorer"
    ) as error:
        wrapper.fit(Xn, yn)
    assert "make_scorer" in str(error.value)
    wrapper.set_params(scoring=make_scorer(metric)).fit(Xn, yn)
    assert 0 < wrapper.score(da.from_array(Xn, chunks=100), yn) <= 1


@pytest.mark.parametrize("wrapper_class", [ParallelPostFit, Incremental])
@pytest.mark.parametrize("scoring", ["not_a_metric", ["accuracy", "r2"], 3])
def test_an_unknown_scoring_is_refused_at_fit(classification, wrapper_class, scoring):
    Xn, yn, _ = classification
    with pytest.raises(ValueError, match="scoring"):
        wrapper_class(SGDClassifier(), scoring=scoring).fit(Xn, yn)
