import os
import pickle
import signal

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import IncrementalPCA
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, SGDClassifier, SGDRegressor
from sklearn.model_selection import GridSearchCV
from sklearn.multioutput import MultiOutputClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from incremental import Incremental

N, CHUNK = 600, 100


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    Xn = rng.normal(size=(N, 4))
    yn = (Xn[:, 0] - Xn[:, 1] > 0).astype(int)
    return Xn, yn, da.from_array(Xn, chunks=CHUNK), da.from_array(yn, chunks=CHUNK)


def plain_loop(estimator, Xn, yn, blocks, **params):
    for b in blocks:
        rows = slice(b * CHUNK, (b + 1) * CHUNK)
        estimator.partial_fit(Xn[rows], yn[rows], **params)
    return estimator


class CountingClassifier(ClassifierMixin, BaseEstimator):
    """Counts samples per class; fails on request after updating its state."""

    def __init__(self, fail_on_value=None):
        self.fail_on_value = fail_on_value

    def partial_fit(self, X, y, classes=None):
        if not hasattr(self, "counts_"):
            self.classes_ = np.asarray(classes)
            self.counts_ = np.zeros(len(classes))
            self.n_features_in_ = X.shape[1]
        for i, c in enumerate(self.classes_):
            self.counts_[i] += np.sum(y == c)  # mutate first ...
        if self.fail_on_value is not None and np.any(X == self.fail_on_value):
            raise RuntimeError("bad block")  # ... then fail: a half-updated model
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[np.argmax(self.counts_)])


# -- exactness and order ---------------------------------------------------


def test_fit_equals_plain_loop_in_storage_order(data):
    Xn, yn, X, y = data
    ours = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False).fit(X, y)
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, range(6), classes=[0, 1])
    np.testing.assert_array_equal(ours.coef_, ref.coef_)
    np.testing.assert_array_equal(ours.intercept_, ref.intercept_)
    assert ours.n_blocks_seen_ == 6


def test_shuffled_order_is_the_documented_permutation(data):
    Xn, yn, X, y = data
    ours = Incremental(SGDClassifier(random_state=0), random_state=7).fit(X, y)
    order = np.random.RandomState(7).permutation(6)
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, order, classes=[0, 1])
    np.testing.assert_array_equal(ours.coef_, ref.coef_)
    other = Incremental(SGDClassifier(random_state=0), random_state=8).fit(X, y)
    assert not np.array_equal(other.coef_, ours.coef_)


def test_partial_fit_continues_and_fit_restarts(data):
    Xn, yn, X, y = data
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.partial_fit(X[:300], y[:300])
    model.partial_fit(X[300:], y[300:])
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, range(6), classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    assert model.n_blocks_seen_ == 6
    model.fit(X[:200], y[:200])
    assert model.n_blocks_seen_ == 2


def test_schedulers_give_the_same_state(data):
    _, _, X, y = data
    coefs = []
    for scheduler in ["threads", "sync", "processes"]:
        with dask.config.set(scheduler=scheduler):
            coefs.append(
                Incremental(SGDClassifier(random_state=0), random_state=0)
                .fit(X, y)
                .coef_
            )
    for coef in coefs[1:]:
        np.testing.assert_array_equal(coef, coefs[0])


@pytest.mark.parametrize("prefetch", [1, 3, 64])
def test_prefetch_does_not_change_the_state(data, prefetch):
    Xn, yn, X, y = data
    ours = Incremental(
        SGDClassifier(random_state=0), shuffle_blocks=False, prefetch=prefetch
    ).fit(X, y)
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, range(6), classes=[0, 1])
    np.testing.assert_array_equal(ours.coef_, ref.coef_)


# -- fit parameters and classes -----------------------------------------------


def test_sample_weight_is_split_and_other_params_pass_unchanged(data):
    Xn, yn, X, y = data
    w = np.linspace(0.5, 2.0, N)
    ours = Incremental(SGDRegressor(random_state=0), shuffle_blocks=False)
    ours.fit(X, yn * 1.0, sample_weight=da.from_array(w, chunks=77))
    ref = SGDRegressor(random_state=0)
    for b in range(6):
        rows = slice(b * CHUNK, (b + 1) * CHUNK)
        ref.partial_fit(Xn[rows], yn[rows] * 1.0, sample_weight=w[rows])
    np.testing.assert_array_equal(ours.coef_, ref.coef_)


def test_classes_found_when_not_given(data):
    _, yn, X, _ = data
    labels = np.where(yn == 1, "yes", "no")
    y = da.from_array(labels, chunks=CHUNK)
    # The first block alone holds a single class: without a pass over all of
    # y, partial_fit would fail or learn the wrong classes.
    y_one_class_first = da.concatenate(
        [da.full(CHUNK, "no", dtype=labels.dtype, chunks=CHUNK), y[CHUNK:]]
    )
    model = Incremental(GaussianNB(), shuffle_blocks=False).fit(X, y_one_class_first)
    assert model.classes_.tolist() == ["no", "yes"]


def test_given_classes_are_used(data):
    _, _, X, y = data
    model = Incremental(SGDClassifier(), shuffle_blocks=False).fit(
        X, y, classes=[0, 1, 2]
    )
    assert model.classes_.tolist() == [0, 1, 2]


def test_multi_output_classes_per_column(data):
    Xn, yn, X, _ = data
    Y = np.stack([yn, (Xn[:, 2] > 0).astype(int) * 2], axis=1)
    model = Incremental(MultiOutputClassifier(SGDClassifier(random_state=0)))
    model.fit(X, da.from_array(Y, chunks=(50, 2)))
    assert [e.classes_.tolist() for e in model.estimators_] == [[0, 1], [0, 2]]
    assert model.predict(X).shape == (N, 2)


def test_dataframe_input_keeps_feature_names(data):
    Xn, yn, _, _ = data
    frame = pd.DataFrame(Xn, columns=["a", "b", "c", "d"]).assign(t=yn)
    ddf = dd.from_pandas(frame, npartitions=5)
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(ddf[["a", "b", "c", "d"]], ddf["t"])
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert model.n_blocks_seen_ == 5
    assert model.score(ddf[["a", "b", "c", "d"]], ddf["t"]) > 0.9


def test_in_memory_input_is_one_partial_fit(data):
    Xn, yn, _, _ = data
    ours = Incremental(SGDClassifier(random_state=0)).fit(Xn, yn)
    ref = SGDClassifier(random_state=0).partial_fit(Xn, yn, classes=[0, 1])
    np.testing.assert_array_equal(ours.coef_, ref.coef_)
    assert ours.n_blocks_seen_ == 1


# -- bad input -------------------------------------------------------------------


def test_estimator_without_partial_fit_is_named(data):
    _, _, X, y = data
    with pytest.raises(TypeError, match="LinearRegression has no partial_fit"):
        Incremental(LinearRegression()).fit(X, y)
    # and the wrapper has no partial_fit either, as hasattr says
    assert not hasattr(Incremental(LinearRegression()), "partial_fit")
    assert hasattr(Incremental(SGDClassifier()), "partial_fit")


def test_a_frozen_estimator_is_refused_and_left_unchanged(data):
    Xn, yn, X, y = data
    model = SGDClassifier(random_state=0).fit(Xn, yn)
    coef = model.coef_.copy()
    wrapper = Incremental(FrozenEstimator(model))
    with pytest.raises(TypeError, match=r"Incremental\.fit would change"):
        wrapper.fit(X, y)
    assert not hasattr(wrapper, "partial_fit")
    with pytest.raises(AttributeError, match="it is frozen"):
        wrapper.partial_fit(X, y)
    np.testing.assert_array_equal(model.coef_, coef)
    # predicting with it needs no fit
    np.testing.assert_array_equal(wrapper.predict(X).compute(), model.predict(Xn))


def test_a_fitted_estimator_predicts_without_fit_and_fit_restarts(data):
    Xn, yn, X, y = data
    model = SGDClassifier(random_state=0).fit(Xn, yn)
    wrapper = Incremental(model, shuffle_blocks=False)
    np.testing.assert_array_equal(wrapper.predict(X).compute(), model.predict(Xn))
    assert wrapper.score(X, y) == pytest.approx(model.score(Xn, yn))
    wrapper.partial_fit(X, y)  # from clone(model), not from model
    expected = plain_loop(
        SGDClassifier(random_state=0), Xn, yn, range(6), classes=[0, 1]
    )
    np.testing.assert_array_equal(wrapper.coef_, expected.coef_)


def test_incremental_pca_refuses_a_first_block_smaller_than_n_components(data):
    Xn, _, _, _ = data
    X = da.from_array(Xn, chunks=((1, 299, 300), (4,)))
    with pytest.raises(
        ValueError, match="n_components=2 rows, but the first batch has 1 sample;"
    ):
        Incremental(IncrementalPCA(n_components=2), shuffle_blocks=False).fit(X)
    # the first block is what counts: a small block later is fine
    later = da.from_array(Xn, chunks=((300, 299, 1), (4,)))
    Incremental(IncrementalPCA(n_components=2), shuffle_blocks=False).fit(later)


@pytest.mark.parametrize(
    "params,match",
    [
        ({"shuffle_blocks": "yes"}, "shuffle_blocks"),
        ({"prefetch": 0}, "prefetch"),
        ({"prefetch": "lots"}, "prefetch"),
        ({"random_state": "seed"}, "seed"),
    ],
)
def test_invalid_constructor_values_raise_at_fit(data, params, match):
    _, _, X, y = data
    model = Incremental(SGDClassifier(), **params)  # construction never raises
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)


def test_one_dimensional_numeric_x_is_refused_with_the_block(data):
    _, yn, X, y = data
    with pytest.raises(ValueError, match="2D|2-dimensional") as info:
        Incremental(SGDClassifier(), shuffle_blocks=False).fit(X[:, 0], y)
    assert "block 0 of 6" in "\n".join(info.value.__notes__)


def test_length_mismatch(data):
    _, _, X, _ = data
    with pytest.raises(ValueError, match="X has 600 rows but y has 599"):
        Incremental(SGDClassifier()).fit(X, np.zeros(599))


def test_nan_names_the_block(data):
    Xn, _, _, y = data
    bad = Xn.copy()
    bad[250, 1] = np.nan
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    with pytest.raises(ValueError, match="NaN") as info:
        model.fit(da.from_array(bad, chunks=CHUNK), y)
    notes = "\n".join(info.value.__notes__)
    assert "block 2 of 6 (rows 200:300)" in notes
    assert model.n_blocks_seen_ == 2


def test_inf_names_the_block(data):
    Xn, _, _, y = data
    bad = Xn.copy()
    bad[590, 0] = np.inf
    with pytest.raises(ValueError, match="infinity") as info:
        Incremental(SGDClassifier(), shuffle_blocks=False).fit(
            da.from_array(bad, chunks=CHUNK), y
        )
    assert "block 5 of 6" in "\n".join(info.value.__notes__)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        Incremental(SGDClassifier()).predict(np.zeros((2, 2)))


# -- failures keep the finished work ---------------------------------------------


def _fail_on_block(block, block_info=None, bad=3):
    if block_info[0]["chunk-location"][0] == bad:
        raise OSError("could not read block")
    return block


def test_failure_while_computing_a_block_keeps_the_blocks_before(data):
    Xn, yn, X, y = data
    broken = X.map_blocks(_fail_on_block, dtype=X.dtype)
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False, prefetch=4)
    with pytest.raises(OSError, match="could not read") as info:
        model.fit(broken, y)
    assert "computing block 3 of 6" in "\n".join(info.value.__notes__)
    assert model.n_blocks_seen_ == 3
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, range(3), classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    # The work is not lost: continue with the remaining blocks.
    model.partial_fit(X[300:], y[300:])
    plain_loop(ref, Xn, yn, range(3, 6), classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)


@pytest.mark.parametrize("fail_at", [0, 1, 4])
def test_partial_fit_failing_mid_update_is_undone(data, fail_at):
    Xn, yn, _, _ = data
    Xn = Xn.copy()
    Xn[fail_at * CHUNK + 5, 0] = 1234.5
    X, y = da.from_array(Xn, chunks=CHUNK), da.from_array(yn, chunks=CHUNK)
    model = Incremental(CountingClassifier(fail_on_value=1234.5), shuffle_blocks=False)
    with pytest.raises(RuntimeError, match="bad block"):
        model.fit(X, y)
    assert model.n_blocks_seen_ == fail_at
    expected = [np.sum(yn[: fail_at * CHUNK] == c) for c in (0, 1)]
    if fail_at:
        np.testing.assert_array_equal(model.counts_, expected)
    else:
        assert not hasattr(model.estimator_, "counts_")


def test_ctrl_c_stops_between_blocks(data):
    Xn, yn, X, y = data

    class Interrupting(SGDClassifier):
        def partial_fit(self, X, y, classes=None):
            super().partial_fit(X, y, classes=classes)
            self.calls_ = getattr(self, "calls_", 0) + 1
            if self.calls_ == 2:
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-block
            return self

    model = Incremental(Interrupting(random_state=0), shuffle_blocks=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y)
    assert model.n_blocks_seen_ == 2  # the block in progress was finished
    ref = plain_loop(SGDClassifier(random_state=0), Xn, yn, range(2), classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- scikit-learn citizenship -------------------------------------------------------


def test_clone_params_and_pickle(data):
    _, _, X, y = data
    model = Incremental(SGDClassifier(alpha=0.01), random_state=0)
    assert model.get_params()["estimator__alpha"] == 0.01
    model.set_params(estimator__alpha=0.1)
    assert clone(model).estimator.alpha == 0.1
    model.fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.predict(X).compute(), model.predict(X).compute()
    )
    assert "Incremental" in model._repr_html_()
    assert not hasattr(clone(model), "estimator_")


def test_reference_pipeline_out_of_core(data):
    Xn, yn, X, y = data
    pipe = make_pipeline(
        Incremental(StandardScaler(), shuffle_blocks=False),
        Incremental(SGDClassifier(random_state=0), shuffle_blocks=False),
    )
    pipe.fit(X, y)
    scaler = StandardScaler()
    for b in range(6):
        scaler.partial_fit(Xn[b * CHUNK : (b + 1) * CHUNK])
    ref = plain_loop(
        SGDClassifier(random_state=0),
        scaler.transform(Xn),
        yn,
        range(6),
        classes=[0, 1],
    )
    np.testing.assert_array_equal(pipe[-1].coef_, ref.coef_)
    assert isinstance(pipe.predict(X), da.Array)
    np.testing.assert_array_equal(
        pipe.predict(X).compute(), ref.predict(scaler.transform(Xn))
    )


def test_grid_search_on_dask_arrays(data):
    _, _, X, y = data
    search = GridSearchCV(
        Incremental(SGDClassifier(random_state=0), random_state=0),
        {"estimator__alpha": [1e-4, 1e-1]},
        cv=2,
    )
    search.fit(X, y)
    assert search.best_params_["estimator__alpha"] in (1e-4, 1e-1)
    assert search.best_score_ > 0.8
    assert search.predict(X).shape == (N,)


@pytest.mark.parametrize("batch_size", [None, 70])
def test_dask_array_of_sparse_blocks(data, batch_size):
    import scipy.sparse as sp

    Xn, yn, _, _ = data
    X = da.from_array(Xn, chunks=(CHUNK, 2)).map_blocks(sp.csr_matrix)
    model = Incremental(
        SGDClassifier(random_state=0), shuffle_blocks=False, batch_size=batch_size
    ).fit(X, yn)
    ref = SGDClassifier(random_state=0)
    step = batch_size or CHUNK
    for start in range(0, N, step):
        rows = slice(start, start + step)
        ref.partial_fit(sp.csr_matrix(Xn[rows]), yn[rows], classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    np.testing.assert_array_equal(model.predict(X).compute(), ref.predict(Xn))


def test_finding_classes_holds_a_bounded_part_of_y(monkeypatch):
    import incremental._classes as module

    # 800 B blocks, each a task (blocks held in the graph skip the scheduler)
    y = da.from_array(np.repeat(np.arange(10), 100), chunks=100) + 0
    monkeypatch.setattr(module, "CLASSES_GROUP_BYTES", 2_000)
    calls = []

    def counting_get(dsk, keys, **kwargs):
        calls.append(len(keys))
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get):
        classes = module.find_classes(y, SGDClassifier())
    np.testing.assert_array_equal(classes, np.arange(10))
    assert calls == [2] * 5  # two blocks of y (1,600 B) per call, never more


@pytest.mark.parametrize(
    "X", [None, 3.0, "text", {"a": [1, 2]}, object()], ids=lambda X: type(X).__name__
)
def test_x_that_is_not_data_is_named_before_y_is_read(X):
    reads = []

    def read(block):
        reads.append(len(block))
        return block

    # meta given: dask need not call it to learn the output's type
    y = da.from_array(np.arange(10) % 2, chunks=5).map_blocks(read, meta=np.array([]))
    with pytest.raises(TypeError, match="X must be .*, got "):
        Incremental(SGDClassifier()).fit(X, y)
    assert reads == []


@pytest.mark.parametrize("y", [1, "labels", np.array(1)], ids=repr)
def test_y_that_is_not_data_is_named(data, y):
    _, _, X, _ = data
    with pytest.raises(TypeError, match="y must be .* one entry per row of X, got"):
        Incremental(SGDClassifier()).fit(X, y)
