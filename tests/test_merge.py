"""Mergeable estimators fitted in parallel: identical whatever the cores,
equal to the plain loop within rounding (min, max and counts bit for bit)."""

import threading

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.naive_bayes import (
    BernoulliNB,
    CategoricalNB,
    ComplementNB,
    GaussianNB,
    MultinomialNB,
)
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

import incremental
from incremental import Incremental
from incremental._merge import FixedTree, merge_for

# All-NaN features are part of what is tested: scikit-learn warns on them.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

EXACT = {"n_samples_seen_", "data_min_", "data_max_", "data_range_", "max_abs_"}
COUNTS = {"class_count_", "feature_count_", "category_count_", "n_categories_"}


def fitted(model):
    return {
        name: value
        for name, value in vars(model).items()
        if name.endswith("_") and not name.startswith("_")
    }


def assert_close_to_loop(ours, loop, exact=()):
    """Every fitted attribute equal within rounding; ``exact`` bit for bit."""
    ours, loop = fitted(ours), fitted(loop)
    assert ours.keys() == loop.keys()
    for name, expected in loop.items():
        got = ours[name]
        if expected is None or isinstance(expected, str):
            assert got == expected, name
        elif isinstance(expected, list):
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b, err_msg=name)
        elif name in exact:
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            np.testing.assert_allclose(
                got, expected, rtol=1e-12, atol=1e-300, equal_nan=True, err_msg=name
            )


def loop(estimator, blocks, **params):
    model = clone(estimator)
    for block in blocks:
        model.partial_fit(*block, **params)
    return model


def ours(estimator, X, y=None, readers=None, **params):
    context = dask.config.set(num_workers=readers) if readers else dask.config.set({})
    with context:
        return (
            Incremental(clone(estimator), shuffle_blocks=False, merge=True, prefetch=4)
            .fit(X, y, **params)
            .estimator_
        )


def dense(seed, n_blocks=7, nan=None):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, n_blocks)
    X = 50 + np.exp(rng.uniform(-3, 3, 4)) * rng.normal(size=(sizes.sum(), 4))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    if nan == "scattered":
        mask = rng.random(X.shape) < 0.2
        mask[bounds[:-1]] = False  # each feature keeps a value in each block
        X[mask] = np.nan
    elif nan == "empty-first":
        X[bounds[0] : bounds[1], 1] = np.nan
    elif nan == "empty-later":
        X[bounds[3] : bounds[4], 1] = np.nan
    return X, tuple(int(s) for s in sizes)


@pytest.mark.parametrize(
    "estimator",
    [
        StandardScaler(),
        StandardScaler(with_mean=False),
        StandardScaler(with_std=False),
        StandardScaler(with_mean=False, with_std=False),
        MinMaxScaler(),
        MinMaxScaler(feature_range=(-2, 3)),
        MaxAbsScaler(),
    ],
    ids=lambda e: repr(e),
)
@pytest.mark.parametrize("nan", [None, "scattered", "empty-first", "empty-later"])
def test_scalers_match_the_loop(estimator, nan):
    for seed in range(3):
        Xn, sizes = dense(seed, nan=nan)
        blocks = np.split(Xn, np.cumsum(sizes)[:-1])
        expected = loop(estimator, [(b,) for b in blocks])
        got = ours(estimator, da.from_array(Xn, chunks=(sizes, 4)))
        assert_close_to_loop(got, expected, exact=EXACT)


@pytest.mark.parametrize("estimator", [StandardScaler(), MaxAbsScaler()], ids=repr)
def test_sparse_scalers_match_the_loop(estimator):
    if isinstance(estimator, StandardScaler):
        estimator = StandardScaler(with_mean=False)
    Xn, sizes = dense(1)
    Xn[np.random.default_rng(1).random(Xn.shape) < 0.5] = 0.0
    blocks = [sp.csr_matrix(b) for b in np.split(Xn, np.cumsum(sizes)[:-1])]
    expected = loop(estimator, [(b,) for b in blocks])
    X = da.from_array(Xn, chunks=(sizes, 4)).map_blocks(sp.csr_matrix)
    assert_close_to_loop(ours(estimator, X), expected, exact=EXACT)


def test_weighted_scaler_matches_the_loop():
    Xn, sizes = dense(2)
    w = np.random.default_rng(2).integers(1, 4, len(Xn)).astype(float)
    cuts = np.cumsum(sizes)[:-1]
    expected = StandardScaler()
    for b, wb in zip(np.split(Xn, cuts), np.split(w, cuts)):
        expected.partial_fit(b, sample_weight=wb)
    got = ours(StandardScaler(), da.from_array(Xn, chunks=(sizes, 4)), sample_weight=w)
    assert_close_to_loop(got, expected, exact=EXACT)


def labelled(seed, kind, n_blocks=7, n_classes=4):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 40, n_blocks)
    blocks = []
    for k, n in enumerate(sizes):
        present = (
            np.arange(n_classes)
            if k % 3 == 0
            else rng.choice(n_classes, 2, replace=False)
        )
        y = rng.choice(present, n)
        if kind == "gauss":
            X = rng.normal(size=(n, 5)) * (1 + y[:, None]) + y[:, None]
        elif kind == "counts":
            X = rng.poisson(2 + y[:, None], size=(n, 5)).astype(float)
        else:  # categories growing from block to block
            X = rng.integers(0, 2 + k // 2, size=(n, 5)).astype(float)
        blocks.append((X, y))
    return blocks, tuple(int(s) for s in sizes)


@pytest.mark.parametrize(
    "estimator, kind",
    [
        (GaussianNB(), "gauss"),
        (GaussianNB(priors=[0.1, 0.2, 0.3, 0.4]), "gauss"),
        (MultinomialNB(), "counts"),
        (MultinomialNB(fit_prior=False), "counts"),
        (BernoulliNB(), "gauss"),
        (ComplementNB(), "counts"),
        (CategoricalNB(), "categorical"),
    ],
    ids=lambda p: repr(p) if not isinstance(p, str) else p,
)
def test_naive_bayes_match_the_loop(estimator, kind):
    classes = np.arange(4)
    for seed in range(3):
        blocks, sizes = labelled(seed, kind)
        expected = loop(estimator, blocks, classes=classes)
        Xn = np.concatenate([b[0] for b in blocks])
        yn = np.concatenate([b[1] for b in blocks])
        got = ours(estimator, da.from_array(Xn, chunks=(sizes, 5)), yn)
        assert_close_to_loop(got, expected, exact=COUNTS)


def test_fixed_tree_depends_only_on_the_number_of_parts():
    def shape(n):
        tree = FixedTree(lambda a, b: f"({a} {b})")
        for i in range(n):
            tree.add(str(i))
        return tree.result()

    assert shape(1) == "0"
    assert shape(4) == "((0 1) (2 3))"
    assert shape(6) == "(((0 1) (2 3)) (4 5))"


def test_continuing_and_epochs_merge_onto_the_model_so_far():
    Xn, sizes = dense(4)
    X = da.from_array(Xn, chunks=(sizes, 4))
    model = Incremental(StandardScaler(), merge=True, shuffle_blocks=False)
    model.partial_fit(X[:40]).partial_fit(X[40:])
    expected = loop(StandardScaler(), [(Xn[:40],), (Xn[40:],)])
    assert_close_to_loop(model.estimator_, expected, exact=EXACT)
    twice = Incremental(StandardScaler(), merge=True, max_epochs=2).fit(X)
    assert twice.n_samples_seen_ == 2 * len(Xn)


def test_serial_loop_when_asked_or_when_batches_are_small():
    Xn, sizes = dense(5)
    X = da.from_array(Xn, chunks=(sizes, 4))
    expected = loop(
        StandardScaler(), [(b,) for b in np.split(Xn, np.cumsum(sizes)[:-1])]
    )
    for merge in (False, "auto"):  # "auto": these batches are far below 2 MiB
        got = Incremental(StandardScaler(), merge=merge, shuffle_blocks=False).fit(X)
        for name, value in fitted(expected).items():
            np.testing.assert_array_equal(fitted(got.estimator_)[name], value)


def test_a_failing_batch_keeps_the_merged_batches_before():
    blocks, sizes = labelled(0, "gauss")
    Xn = np.concatenate([b[0] for b in blocks])
    yn = np.concatenate([b[1] for b in blocks])
    Xn[sum(sizes[:3]) + 1, 0] = np.nan  # GaussianNB refuses NaN: batch 3
    model = Incremental(GaussianNB(), merge=True, shuffle_blocks=False)
    with pytest.raises(ValueError, match="NaN") as info:
        model.fit(da.from_array(Xn, chunks=(sizes, 5)), yn)
    assert "raised while fitting block 3 of 7" in "\n".join(info.value.__notes__)
    assert model.n_blocks_seen_ == 3
    expected = loop(GaussianNB(), blocks[:3], classes=np.arange(4))
    assert_close_to_loop(model.estimator_, expected, exact=COUNTS)


def test_batches_are_fitted_in_the_reader_threads():
    threads = set()

    class Recording(StandardScaler):
        def partial_fit(self, X, y=None, sample_weight=None):
            threads.add(threading.current_thread().name)
            return super().partial_fit(X, y, sample_weight)

    incremental.MERGEABLE[Recording] = merge_for(StandardScaler())
    try:
        X = da.from_array(np.random.default_rng(0).normal(size=(4_000, 50)), chunks=500)
        with dask.config.set(num_workers=2):
            Incremental(Recording(), merge=True, prefetch=8).fit(X * 1.0)
    finally:
        del incremental.MERGEABLE[Recording]
    assert threads  # fitted apart; where depends on what "auto" overlap chose


def test_register_merge_for_another_estimator():
    class Sum(BaseEstimator):
        def partial_fit(self, X, y=None):
            self.total_ = getattr(self, "total_", 0.0) + float(np.sum(X))
            self.n_features_in_ = X.shape[1]
            return self

    def merge_sums(a, b):
        out = Sum()
        out.total_, out.n_features_in_ = a.total_ + b.total_, a.n_features_in_
        return out

    incremental.register_merge(Sum, merge_sums)
    try:
        model = Incremental(Sum(), merge=True).fit(da.ones((100, 2), chunks=7))
    finally:
        del incremental.MERGEABLE[Sum]
    assert model.total_ == 200.0 and model.n_blocks_seen_ == 15
    with pytest.raises(TypeError, match="must be a class"):
        incremental.register_merge(Sum(), merge_sums)


def test_invalid_merge_value():
    with pytest.raises(ValueError, match="merge must be"):
        Incremental(StandardScaler(), merge="yes").fit(np.ones((3, 2)))


def test_merged_on_a_cluster_is_identical_to_merged_here(client):
    Xn, sizes = dense(6, n_blocks=9, nan="scattered")
    X = da.from_array(Xn, chunks=(sizes, 4))
    with dask.config.set(scheduler="threads"):
        here = ours(StandardScaler(), X)
    there = ours(StandardScaler(), X)  # the client's scheduler
    for name, value in fitted(here).items():
        np.testing.assert_array_equal(fitted(there)[name], value)
    blocks, sizes = labelled(1, "counts")
    Xn = np.concatenate([b[0] for b in blocks])
    yn = np.concatenate([b[1] for b in blocks])
    X = da.from_array(Xn, chunks=(sizes, 5))
    with dask.config.set(scheduler="threads"):
        here = ours(MultinomialNB(), X, yn)
    there = ours(MultinomialNB(), X, yn)
    for name, value in fitted(here).items():
        np.testing.assert_array_equal(fitted(there)[name], value)
