import pickle
import warnings

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.decomposition import IncrementalPCA
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multioutput import MultiOutputClassifier
from sklearn.preprocessing import StandardScaler

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
