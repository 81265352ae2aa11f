import pickle
import warnings

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.decomposition import IncrementalPCA
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from incremental import Incremental, ParallelPostFit
from incremental._postfit import POSTFIT_METHODS


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(500, 3))
    yn = (Xn[:, 0] > 0).astype(int)
    return Xn, yn


@pytest.fixture
def fitted(data):
    Xn, yn = data
    return ParallelPostFit(LogisticRegression()).fit(Xn, yn)


@pytest.mark.parametrize(
    "estimator",
    [
        SGDClassifier(loss="hinge"),
        SGDClassifier(loss="log_loss"),
        StandardScaler(),
        IncrementalPCA(n_components=2),
        LogisticRegression(),
    ],
)
def test_methods_exist_exactly_when_the_estimator_has_them(data, estimator):
    Xn, yn = data
    wrapper = ParallelPostFit(estimator)
    for name in POSTFIT_METHODS:
        assert hasattr(wrapper, name) == hasattr(estimator, name), name
    wrapper.fit(Xn, yn)
    for name in [*POSTFIT_METHODS, "score"]:
        assert hasattr(wrapper, name) == hasattr(wrapper.estimator_, name), name


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "decision_function", "predict_log_proba"]
)
def test_dask_array_in_lazy_array_out(data, fitted, method):
    Xn, _ = data
    X = da.from_array(Xn, chunks=(120, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = getattr(fitted, method)(X)
        expected = getattr(fitted.estimator_, method)(Xn)
        assert isinstance(out, da.Array)
        assert out.chunks[0] == (120, 120, 120, 120, 20)
        assert out.shape == expected.shape
        assert out.dtype == expected.dtype
        assert type(out._meta) is np.ndarray
        np.testing.assert_array_equal(out.compute(), expected)


def test_numpy_and_pandas_in_give_the_estimators_own_result(data, fitted):
    Xn, _ = data
    np.testing.assert_array_equal(fitted.predict(Xn), fitted.estimator_.predict(Xn))
    frame = pd.DataFrame(Xn)
    np.testing.assert_array_equal(
        fitted.predict(frame), fitted.estimator_.predict(frame)
    )


def test_dask_dataframe_with_empty_partitions(data):
    Xn, yn = data
    frame = pd.DataFrame(Xn, columns=["a", "b", "c"])
    model = ParallelPostFit(LogisticRegression()).fit(frame, yn)
    ddf = dd.from_pandas(frame, npartitions=5)
    # Partitions 2, 3 and 4 end up empty.
    some_empty = ddf.map_partitions(lambda part: part[part.index < 150])
    assert some_empty.map_partitions(len).compute().tolist() == [100, 50, 0, 0, 0]
    for method in ["predict", "predict_proba"]:
        out = getattr(model, method)(some_empty)
        expected = getattr(model.estimator_, method)(frame[:150])
        np.testing.assert_array_equal(out.compute(), expected)


def test_dask_array_with_unknown_chunks_and_an_empty_block(data, fitted):
    Xn, _ = data
    keep = np.ones(len(Xn), dtype=bool)
    keep[100:200] = False  # block 1 becomes empty
    X = da.from_array(Xn, chunks=100)[da.from_array(keep, chunks=100)]
    assert np.isnan(X.shape[0])
    out = fitted.predict_proba(X).compute()
    np.testing.assert_array_equal(out, fitted.estimator_.predict_proba(Xn[keep]))


def test_estimator_enters_the_graph_once(data):
    Xn, yn = data
    model = ParallelPostFit(LogisticRegression()).fit(Xn, yn)
    model.estimator_.ballast_ = np.zeros(250_000)  # 2 MB carried by the model
    X = da.from_array(Xn, chunks=5)  # 100 blocks
    graph = dict(model.predict(X).__dask_graph__())
    assert len(pickle.dumps(graph)) < 4_000_000  # once: ~2 MB; per task: 200 MB


def test_multi_output_predict_proba_gives_one_array_per_output(data):
    Xn, yn = data
    Y = np.stack([yn, 1 - yn], axis=1)
    model = ParallelPostFit(MultiOutputClassifier(LogisticRegression())).fit(Xn, Y)
    out = model.predict_proba(da.from_array(Xn, chunks=100))
    expected = model.estimator_.predict_proba(Xn)
    assert isinstance(out, list) and len(out) == 2
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got.compute(), want)
    predicted = model.predict(da.from_array(Xn, chunks=100))
    np.testing.assert_array_equal(predicted.compute(), model.estimator_.predict(Xn))


def test_sparse_blocks_and_text(data):
    Xn, yn = data
    model = ParallelPostFit(LogisticRegression()).fit(Xn, yn)
    Xs = da.from_array(Xn, chunks=100).map_blocks(sp.csr_matrix)
    np.testing.assert_array_equal(
        model.predict(Xs).compute(), model.estimator_.predict(Xn)
    )

    words = np.array(
        ["red fish", "blue fish", "one fish", "two fish"] * 10, dtype=object
    )
    vec = Incremental(HashingVectorizer(n_features=16)).fit(
        da.from_array(words, chunks=7)
    )
    out = vec.transform(da.from_array(words, chunks=7))
    assert out.shape == (40, 16)
    assert sp.issparse(out.blocks[0].compute())
    expected = HashingVectorizer(n_features=16).transform(words).toarray()
    computed = sp.vstack([block.compute() for block in out.blocks]).toarray()
    np.testing.assert_array_equal(computed, expected)


def test_transform_and_inverse_transform(data):
    Xn, _ = data
    model = Incremental(StandardScaler(), shuffle_blocks=False).fit(
        da.from_array(Xn, chunks=100)
    )
    X = da.from_array(Xn, chunks=100)
    Z = model.transform(X)
    np.testing.assert_allclose(Z.compute(), model.estimator_.transform(Xn))
    np.testing.assert_allclose(model.inverse_transform(Z).compute(), Xn)


def test_user_meta_is_used(data, fitted):
    Xn, _ = data
    meta = np.empty((0,), dtype=np.int64)
    model = ParallelPostFit(LogisticRegression(), predict_meta=meta)
    model.fit(Xn, (Xn[:, 0] > 0).astype(int))
    out = model.predict(da.from_array(Xn, chunks=100))
    assert out._meta.dtype == np.int64


def test_fit_gathers_dask_input_for_in_memory_estimators(data):
    Xn, yn = data
    model = ParallelPostFit(LogisticRegression()).fit(
        da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)
    )
    np.testing.assert_array_equal(model.coef_, LogisticRegression().fit(Xn, yn).coef_)


# -- a fitted estimator, wrapped without fit -------------------------------------
def test_a_fitted_estimator_needs_no_fit(data):
    Xn, yn = data
    model = LogisticRegression().fit(Xn, yn)
    wrapper = ParallelPostFit(model)
    X, y = da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)
    np.testing.assert_array_equal(wrapper.predict(X).compute(), model.predict(Xn))
    np.testing.assert_array_equal(
        wrapper.predict_proba(X).compute(), model.predict_proba(Xn)
    )
    assert wrapper.score(X, y) == pytest.approx(model.score(Xn, yn))
    assert wrapper.classes_.tolist() == [0, 1] and wrapper.coef_ is model.coef_
    assert "estimator_" not in vars(wrapper)
    check_is_fitted(wrapper)

    scaler = StandardScaler().fit(Xn)
    np.testing.assert_allclose(
        ParallelPostFit(scaler).transform(X).compute(), scaler.transform(Xn)
    )


def test_fit_still_fits_a_clone(data):
    Xn, yn = data
    model = LogisticRegression().fit(Xn[:50], yn[:50])
    coef = model.coef_.copy()
    wrapper = ParallelPostFit(model).fit(Xn, yn)
    assert wrapper.estimator_ is not model
    np.testing.assert_array_equal(model.coef_, coef)  # untouched
    np.testing.assert_array_equal(wrapper.coef_, LogisticRegression().fit(Xn, yn).coef_)


def test_an_unfitted_estimator_is_not_fitted_through_the_wrapper(data):
    Xn, _ = data
    wrapper = ParallelPostFit(LogisticRegression())
    with pytest.raises(NotFittedError, match="call fit, or wrap an estimator"):
        wrapper.predict(da.from_array(Xn, chunks=100))
    assert not hasattr(wrapper, "coef_")


def _unreadable(Xn):
    def fail(block):
        raise AssertionError("X was computed")

    return da.from_array(Xn, chunks=100).map_blocks(fail, dtype=Xn.dtype)


def test_frozen_estimators_stay_through_pipeline_fit_without_computing_x(data):
    Xn, yn = data
    scaler = StandardScaler().fit(Xn)
    model = LogisticRegression().fit(scaler.transform(Xn), yn)
    coef = model.coef_.copy()
    pipe = make_pipeline(
        ParallelPostFit(FrozenEstimator(scaler)),
        ParallelPostFit(FrozenEstimator(model)),
    )
    pipe.fit(_unreadable(Xn), yn)  # fit_transform, then fit: nothing computed
    assert pipe[-1].estimator_.estimator is model
    np.testing.assert_array_equal(model.coef_, coef)
    X = da.from_array(Xn, chunks=100)
    np.testing.assert_array_equal(
        pipe.predict(X).compute(), model.predict(scaler.transform(Xn))
    )
    # and without fit
    frozen = ParallelPostFit(FrozenEstimator(model))
    assert frozen.score(da.from_array(scaler.transform(Xn), chunks=100), yn) > 0.9


def test_a_frozen_estimator_is_not_partially_fitted(data):
    Xn, yn = data
    model = SGDClassifier(random_state=0).fit(Xn, yn)
    coef = model.coef_.copy()
    frozen = ParallelPostFit(FrozenEstimator(model))
    assert not hasattr(frozen, "partial_fit")
    with pytest.raises(AttributeError, match="it is frozen"):
        frozen.partial_fit(Xn, yn)
    np.testing.assert_array_equal(model.coef_, coef)


# -- methods the estimator lacks ---------------------------------------------------
def test_a_missing_method_names_the_estimator_and_scikit_learns_reason(data):
    Xn, yn = data
    wrapper = Incremental(SGDClassifier(loss="hinge")).fit(Xn, yn)
    assert not hasattr(wrapper, "predict_proba")
    with pytest.raises(AttributeError) as error:
        wrapper.predict_proba(Xn)
    message = str(error.value)
    assert "The wrapped estimator SGDClassifier()" in message
    assert "'predict_proba' method" in message
    assert "probability estimates are not available for loss='hinge'" in message

    unfit = ParallelPostFit(LogisticRegression())
    for name in ("transform", "fit_transform"):
        with pytest.raises(AttributeError) as error:
            getattr(unfit, name)
        assert "LogisticRegression() does not have a 'transform' method" in str(
            error.value
        )


# -- partial_fit of ParallelPostFit ----------------------------------------------------
def test_parallel_post_fit_partial_fit_exists_when_the_estimator_has_it(data):
    Xn, yn = data
    assert not hasattr(ParallelPostFit(LogisticRegression()), "partial_fit")
    given = SGDClassifier(random_state=0)
    wrapper = ParallelPostFit(given)
    wrapper.partial_fit(da.from_array(Xn[:250], chunks=100), yn[:250], classes=[0, 1])
    wrapper.partial_fit(Xn[250:], yn[250:])
    expected = SGDClassifier(random_state=0).partial_fit(Xn[:250], yn[:250], [0, 1])
    expected.partial_fit(Xn[250:], yn[250:])
    np.testing.assert_array_equal(wrapper.coef_, expected.coef_)
    assert not hasattr(given, "coef_")  # the first call fitted a clone


# -- set_output and feature names ------------------------------------------------------
@pytest.fixture
def frame(data):
    Xn, _ = data
    pdf = pd.DataFrame(Xn, columns=["a", "b", "c"], index=np.arange(len(Xn)) * 2)
    return pdf, dd.from_pandas(pdf, npartitions=4)


def test_pandas_output_of_a_dask_dataframe_is_a_lazy_dask_dataframe(frame):
    pdf, ddf = frame
    scaler = Incremental(StandardScaler(), shuffle_blocks=False)
    scaler.set_output(transform="pandas").fit(ddf)
    out = scaler.transform(ddf)
    assert isinstance(out, dd.DataFrame)
    assert list(out.columns) == ["a", "b", "c"]
    assert out.divisions == ddf.divisions
    expected = StandardScaler().set_output(transform="pandas").fit(pdf).transform(pdf)
    pd.testing.assert_frame_equal(out.compute(), expected, check_exact=False)
    assert scaler.get_feature_names_out().tolist() == ["a", "b", "c"]


def test_pandas_output_of_a_dask_array_is_indexed_like_scikit_learns(data):
    Xn, _ = data
    X = da.from_array(Xn, chunks=120)
    pca = Incremental(IncrementalPCA(n_components=2), shuffle_blocks=False).fit(X)
    out = pca.set_output(transform="pandas").transform(X)
    assert isinstance(out, dd.DataFrame)
    assert out.divisions == (0, 120, 240, 360, 480, 499)
    expected = pca.estimator_.transform(Xn)  # pandas now: set on estimator_ too
    pd.testing.assert_frame_equal(out.compute(), expected)
    assert list(out.columns) == ["incrementalpca0", "incrementalpca1"]


def test_pipeline_set_output_and_feature_names_go_through_the_wrappers(frame):
    pdf, ddf = frame
    pipe = make_pipeline(
        Incremental(StandardScaler()), Incremental(IncrementalPCA(n_components=2))
    ).set_output(transform="pandas")
    pipe.fit(ddf)
    assert pipe.get_feature_names_out().tolist() == [
        "incrementalpca0",
        "incrementalpca1",
    ]
    out = pipe.transform(ddf)
    assert isinstance(out, dd.DataFrame) and out.compute().index.equals(pdf.index)


def test_set_output_exists_exactly_when_the_estimator_has_it():
    assert hasattr(ParallelPostFit(StandardScaler()), "set_output")
    assert not hasattr(ParallelPostFit(SGDClassifier()), "set_output")
    assert not hasattr(ParallelPostFit(SGDClassifier()), "get_feature_names_out")


# -- the meta given by the user ----------------------------------------------------
def test_given_meta_spares_the_probe_and_keeps_empty_partitions_empty(data):
    Xn, yn = data
    frame = pd.DataFrame(Xn, columns=["a", "b", "c"])
    calls = []

    class Counting(LogisticRegression):
        def predict(self, X):
            calls.append(len(X))
            return super().predict(X)

    model = ParallelPostFit(Counting(), predict_meta=np.array([1])).fit(frame, yn)
    ddf = dd.from_pandas(frame, npartitions=5)
    some_empty = ddf.map_partitions(lambda part: part[part.index < 150])
    out = model.predict(some_empty)
    assert calls == []  # nothing run to learn the output
    np.testing.assert_array_equal(out.compute(), model.estimator_.predict(frame[:150]))
