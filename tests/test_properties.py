"""Property tests: for random shapes, chunkings, dtypes and estimators,

1. fitting equals the plain ``partial_fit`` loop over the same blocks, bit for bit;
   estimators fitted by merging (``merge=True``) are identical whatever the
   cores, and equal to the loop within rounding (min, max, counts exactly);
2. post-fit outputs on dask arrays and DataFrames equal the bare estimator's;
3. clone and pickle round trips keep behaviour.
"""

import os
import pickle

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.cluster import MiniBatchKMeans
from sklearn.linear_model import Perceptron, SGDClassifier, SGDRegressor
from sklearn.naive_bayes import GaussianNB, MultinomialNB
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

from incremental import Incremental
from incremental._merge import merge_for

# HYPOTHESIS_PROFILE=thorough runs many more examples than the default suite.
settings.register_profile("default", max_examples=25)
settings.register_profile("thorough", max_examples=400)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# name -> (factory, kind of target, needs non-negative X)
ESTIMATORS = {
    "SGDClassifier": (lambda: SGDClassifier(random_state=0), "labels", False),
    "Perceptron": (lambda: Perceptron(random_state=0), "labels", False),
    "GaussianNB": (GaussianNB, "labels", False),
    "MultinomialNB": (MultinomialNB, "labels", True),
    "SGDRegressor": (lambda: SGDRegressor(random_state=0), "values", False),
    "StandardScaler": (StandardScaler, None, False),
    "MinMaxScaler": (MinMaxScaler, None, False),
    "MaxAbsScaler": (MaxAbsScaler, None, False),
    "MiniBatchKMeans": (
        lambda: MiniBatchKMeans(n_clusters=2, n_init=1, random_state=0),
        None,
        False,
    ),
}


def fitted_state(obj):
    """Every learned attribute, recursively, as comparable plain values."""
    if hasattr(obj, "get_params") and hasattr(obj, "__dict__"):
        return {
            k: fitted_state(v)
            for k, v in vars(obj).items()
            if k.endswith("_") and not k.startswith("_")
        }
    if isinstance(obj, (list, tuple)):
        return [fitted_state(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    return obj


@st.composite
def problems(draw):
    name = draw(st.sampled_from(sorted(ESTIMATORS)))
    factory, target, non_negative = ESTIMATORS[name]
    n_features = draw(st.integers(1, 5))
    # Blocks of at least 2 rows: MiniBatchKMeans needs n_clusters rows at first.
    sizes = draw(st.lists(st.integers(2, 40), min_size=1, max_size=8))
    n = sum(sizes)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(dtype)
    if non_negative:
        X = np.abs(X)
    y = None
    if target == "labels":
        y = rng.integers(0, 3, size=n)
        y[:2] = [0, 1]  # at least two classes, as every classifier needs
    elif target == "values":
        y = X.sum(axis=1).astype(np.float64) + rng.normal(size=n)
    shuffle = draw(st.booleans())
    return name, factory, X, y, tuple(sizes), shuffle, seed


def plain_loop(factory, X, y, sizes, order):
    estimator = factory()
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    extra = (
        {"classes": np.unique(y)} if "classes" in _partial_fit_args(estimator) else {}
    )
    for b in order:
        rows = slice(bounds[b], bounds[b + 1])
        if y is None:
            estimator.partial_fit(X[rows], **extra)
        else:
            estimator.partial_fit(X[rows], y[rows], **extra)
    return estimator


def _partial_fit_args(estimator):
    import inspect

    return inspect.signature(estimator.partial_fit).parameters


@SETTINGS
@given(problems(), st.sampled_from(["array", "frame"]))
def test_fit_equals_the_plain_loop(problem, container):
    name, factory, Xn, yn, sizes, shuffle, seed = problem
    if container == "array":
        X = da.from_array(Xn, chunks=(sizes, Xn.shape[1]))
        y = None if yn is None else da.from_array(yn, chunks=sizes)
    else:
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        X = dd.from_pandas(pd.DataFrame(Xn), npartitions=1).repartition(
            divisions=[*bounds[:-1].tolist(), bounds[-1] - 1]
        )
        y = (
            None
            if yn is None
            else dd.from_pandas(pd.Series(yn), npartitions=1).repartition(
                divisions=[*bounds[:-1].tolist(), bounds[-1] - 1]
            )
        )
        if X.npartitions != len(sizes):  # repartition may merge; keep it honest
            return
    model = Incremental(factory(), shuffle_blocks=shuffle, random_state=seed)
    model.fit(X, y)
    order = (
        np.random.RandomState(seed).permutation(len(sizes))
        if shuffle
        else range(len(sizes))
    )
    reference = plain_loop(
        factory, Xn if container == "array" else pd.DataFrame(Xn), yn, sizes, order
    )
    assert fitted_state(model.estimator_) == fitted_state(reference), name
    assert model.n_blocks_seen_ == len(sizes)


EXACTLY_MERGED = {
    "n_samples_seen_",
    "data_min_",
    "data_max_",
    "data_range_",
    "max_abs_",
    "class_count_",  # counts of samples; feature_count_ sums float X
    "n_features_in_",
    "classes_",
}


def _merged(factory, X, y, readers):
    with dask.config.set(num_workers=readers):
        return (
            Incremental(factory(), merge=True, shuffle_blocks=False, prefetch=3)
            .fit(X, y)
            .estimator_
        )


@SETTINGS
@given(
    problems().filter(lambda p: merge_for(p[1]()) is not None),
    st.integers(2, 4),
)
def test_merged_fits_are_identical_whatever_the_cores_and_near_the_loop(
    problem, readers
):
    name, factory, Xn, yn, sizes, _, _ = problem
    X = da.from_array(Xn, chunks=(sizes, Xn.shape[1])) * 1  # tasks: readers read
    y = None if yn is None else da.from_array(yn, chunks=sizes)
    one = _merged(factory, X, y, 1)
    many = _merged(factory, X, y, readers)
    assert fitted_state(one) == fitted_state(many), name
    loop = plain_loop(factory, Xn, yn, sizes, range(len(sizes)))
    for attribute, expected in vars(loop).items():
        if not attribute.endswith("_") or attribute.startswith("_"):
            continue
        got = getattr(one, attribute)
        if attribute in EXACTLY_MERGED:
            np.testing.assert_array_equal(got, expected, err_msg=attribute)
        elif expected is not None:
            rtol = 1e-5 if Xn.dtype == np.float32 else 1e-10
            np.testing.assert_allclose(
                got, expected, rtol=rtol, atol=1e-12, err_msg=f"{name}.{attribute}"
            )


POSTFIT = [
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "score_samples",
]


@SETTINGS
@given(problems(), st.sampled_from(["array", "frame"]), st.data())
def test_postfit_outputs_equal_the_bare_estimator(problem, container, data):
    name, factory, Xn, yn, sizes, _, _ = problem
    frame = pd.DataFrame(Xn, columns=[f"f{i}" for i in range(Xn.shape[1])])
    train = Xn if container == "array" else frame
    model = Incremental(factory()).fit(train, yn)
    if container == "array":
        X = da.from_array(Xn, chunks=(sizes, Xn.shape[1]))
    else:
        X = dd.from_pandas(frame, npartitions=data.draw(st.integers(1, 6)))
    for method in POSTFIT:
        if not hasattr(model, method):
            continue
        expected = getattr(model.estimator_, method)(train)
        got = getattr(model, method)(X).compute()
        assert got.dtype == expected.dtype, (name, method)
        if got.dtype.kind == "f":
            # Matrix products over blocks of other shapes may round differently
            # in the last bits (BLAS picks kernels by shape); labels are exact.
            single = np.float32 in (got.dtype, Xn.dtype)
            rtol = 1e-5 if single else 1e-12
            np.testing.assert_allclose(
                got, expected, rtol=rtol, atol=rtol, err_msg=f"{name}.{method}"
            )
        else:
            np.testing.assert_array_equal(got, expected, err_msg=f"{name}.{method}")


@SETTINGS
@given(problems())
def test_clone_and_pickle_keep_behaviour(problem):
    name, factory, Xn, yn, sizes, shuffle, seed = problem
    X = da.from_array(Xn, chunks=(sizes, Xn.shape[1]))
    y = None if yn is None else da.from_array(yn, chunks=sizes)
    model = Incremental(factory(), shuffle_blocks=shuffle, random_state=seed).fit(X, y)
    refit = clone(model).fit(X, y)
    assert fitted_state(refit.estimator_) == fitted_state(model.estimator_), name
    restored = pickle.loads(pickle.dumps(model))
    assert fitted_state(restored.estimator_) == fitted_state(model.estimator_), name
    method = "predict" if hasattr(model, "predict") else "transform"
    np.testing.assert_array_equal(
        getattr(restored, method)(X).compute(), getattr(model, method)(X).compute()
    )
