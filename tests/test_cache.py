"""The block cache: epochs, and with a budget pipeline stages and repeated fits,
read storage once, within a budget, and never change a result."""

import gc
import threading

import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import incremental
from incremental import Incremental
from incremental._cache import CACHE, BlockCache, FitScope, resolve_budget

N, CHUNK, BLOCK_BYTES = 600, 100, 100 * 4 * 8


class CountingStore:
    """An array-like that counts how many non-empty reads it serves."""

    def __init__(self, data):
        self.data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim
        self.reads = 0
        self.lock = threading.Lock()

    def __getitem__(self, index):
        out = np.array(self.data[index])  # storage hands out fresh arrays
        if out.size:
            with self.lock:
                self.reads += 1
        return out


@pytest.fixture(autouse=True)
def empty_cache():
    incremental.clear_cache()
    yield
    incremental.clear_cache()


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(N, 4))
    yn = (Xn[:, 0] - Xn[:, 1] > 0).astype(int)
    return Xn, yn


def stored(values, chunks=CHUNK):
    store = CountingStore(values)
    return store, da.from_array(store, chunks=chunks, lock=False, meta=values[:0])


def plain(Xn, yn, orders):
    model = SGDClassifier(random_state=0)
    for order in orders:
        for b in order:
            rows = slice(b * CHUNK, (b + 1) * CHUNK)
            model.partial_fit(Xn[rows], yn[rows], classes=[0, 1])
    return model


def test_later_epochs_read_no_storage_and_fit_the_same(data):
    Xn, yn = data
    store, X = stored(Xn)
    model = Incremental(
        SGDClassifier(random_state=0), max_epochs=3, shuffle_blocks=False
    ).fit(X, yn)
    assert store.reads == N // CHUNK  # one read per block, whatever the epochs
    expected = plain(Xn, yn, [range(6)] * 3)
    np.testing.assert_array_equal(model.coef_, expected.coef_)


def test_without_cache_every_epoch_reads(data):
    Xn, yn = data
    store, X = stored(Xn)
    Incremental(SGDClassifier(), max_epochs=3, cache=False).fit(X, yn)
    assert store.reads == 3 * N // CHUNK
    assert incremental.cache_info()["entries"] == 0


def test_next_pipeline_stage_reads_the_kept_blocks(data):
    Xn, yn = data
    store, X = stored(Xn)

    def pipeline(cache):
        return make_pipeline(
            Incremental(StandardScaler(), shuffle_blocks=False, cache=cache),
            Incremental(SGDClassifier(random_state=0), random_state=0, cache=cache),
        )

    ours = pipeline("1GB").fit(X, yn)  # a budget: keep for the next stage
    assert store.reads == N // CHUNK  # the scaler's pass only
    store.reads = 0
    incremental.clear_cache()
    reference = pipeline(False).fit(X, yn)
    assert store.reads == 2 * N // CHUNK
    np.testing.assert_array_equal(ours[-1].coef_, reference[-1].coef_)
    np.testing.assert_array_equal(ours[0].mean_, reference[0].mean_)
    store.reads = 0
    default = pipeline("auto").fit(X, yn)  # "auto" keeps for epochs only
    assert store.reads == 2 * N // CHUNK
    assert incremental.cache_info()["entries"] == 0
    np.testing.assert_array_equal(default[-1].coef_, reference[-1].coef_)


@pytest.mark.parametrize(
    "cache, expected",
    [
        ("auto", [N // CHUNK] * 4),  # one pass: nothing kept
        ("1GB", [N // CHUNK, 0, 0, 0]),  # kept for the later fits
    ],
)
def test_repeated_fits_read_once_with_a_budget(data, cache, expected):
    Xn, yn = data
    store, X = stored(Xn)
    reads = []
    for alpha in (1e-4, 1e-3, 1e-2, 1e-1):
        before = store.reads
        Incremental(SGDClassifier(alpha=alpha), random_state=0, cache=cache).fit(X, yn)
        reads.append(store.reads - before)
    assert reads == expected


class ReadsPerFit(Incremental):
    """Records how many reads of ``STORES[0]`` each fit made."""

    STORES: list = []
    READS: list = []

    def fit(self, X, y=None, **fit_params):
        before = self.STORES[0].reads
        super().fit(X, y, **fit_params)
        self.READS.append(self.STORES[0].reads - before)
        return self


def test_a_search_with_a_budget_reads_each_split_once(data):
    Xn, yn = data
    store, X = stored(Xn)
    ReadsPerFit.STORES[:] = [store]
    ReadsPerFit.READS.clear()
    search = GridSearchCV(
        ReadsPerFit(SGDClassifier(random_state=0), random_state=0, cache="1GB"),
        {"estimator__alpha": [1e-4, 1e-3, 1e-2]},
        cv=2,
        refit=False,
    )
    search.fit(X, da.from_array(yn, chunks=CHUNK))
    reads = ReadsPerFit.READS  # candidate by candidate, split by split
    # The first candidate reads both splits' training blocks; the others
    # find them kept (a new X[train] each time, from the same source).
    assert reads[0] > 0 and reads[1] > 0
    assert reads[2:] == [0, 0, 0, 0]


def test_data_rewritten_and_opened_again_is_read_again(tmp_path, data):
    Xn, yn = data
    path = str(tmp_path / "X.zarr")
    da.from_array(Xn, chunks=CHUNK).to_zarr(path)
    first = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    first.fit(da.from_zarr(path), yn)
    store = zarr.open_array(path, mode="r+")
    store[:] = -Xn  # same path, same shape: dask gives it the same task names
    again = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    again.fit(da.from_zarr(path), yn)
    expected = plain(-Xn, yn, [range(6)])
    np.testing.assert_array_equal(again.coef_, expected.coef_)


def test_budget_keeps_the_first_blocks_and_reads_the_rest(data):
    Xn, yn = data
    store, X = stored(Xn)
    budget = 2 * BLOCK_BYTES  # two blocks of X (y is in memory: not kept)
    model = Incremental(
        SGDClassifier(random_state=0),
        max_epochs=3,
        shuffle_blocks=False,
        cache=budget,
        prefetch=1,
    ).fit(X, yn)
    assert store.reads == 6 + 2 * 4  # epochs 2 and 3 read all but two blocks
    assert incremental.cache_info()["nbytes"] <= budget
    np.testing.assert_array_equal(model.coef_, plain(Xn, yn, [range(6)] * 3).coef_)


def test_kept_blocks_go_with_the_collection(data):
    Xn, yn = data
    _, X = stored(Xn)
    Incremental(SGDClassifier(), max_epochs=2).fit(X, yn)
    assert incremental.cache_info()["entries"] == N // CHUNK
    del X
    gc.collect()
    assert incremental.cache_info()["entries"] == 0


class WritesIntoX(RegressorMixin, BaseEstimator):
    """A badly behaved estimator that changes its input in place."""

    def partial_fit(self, X, y):
        X[:] = 0.0
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.zeros(len(X))


def test_kept_blocks_cannot_be_changed(data):
    Xn, yn = data
    _, X = stored(Xn * 1.0)
    with pytest.raises(ValueError, match="read-only") as info:
        Incremental(WritesIntoX(), shuffle_blocks=False, max_epochs=2).fit(X, yn * 1.0)
    assert "fit with cache=False" in "\n".join(info.value.__notes__)
    Incremental(WritesIntoX(), cache=False, max_epochs=2).fit(X, yn * 1.0)


@pytest.mark.parametrize("cache", ["lots", -1, True, 1.5j])
def test_invalid_cache_values_are_named(data, cache):
    Xn, yn = data
    with pytest.raises(ValueError, match="cache must be"):
        Incremental(SGDClassifier(), cache=cache).fit(Xn, yn)


def test_auto_budget_is_half_the_available_memory(monkeypatch):
    import incremental._cache as module

    monkeypatch.setattr(module, "available_memory", lambda: 1_000)
    assert resolve_budget("auto", held=200) == 600
    assert resolve_budget("2kB", held=0) == 2_000


def test_admission_never_drops_what_a_running_fit_needs():
    cache = BlockCache()
    scope = (FitScope(),)
    fit = cache.open_fit(budget=2_000)
    first, second, third = (np.ones(125) for _ in range(3))  # 1,000 bytes each
    assert cache.store(fit, scope, "a", first)
    assert cache.store(fit, scope, "b", second)
    assert not cache.store(fit, scope, "c", third)  # a and b are needed
    cache.close_fit(fit)
    other = cache.open_fit(budget=2_000)
    assert cache.store(other, scope, "c", third)  # now the oldest makes room
    assert cache.lookup(scope, "a") is None and cache.lookup(scope, "c") is third
    assert not first.flags.writeable  # what was kept is read-only
    assert CACHE is not cache


def test_next_stage_keeps_no_transformed_blocks_for_one_epoch(data):
    Xn, yn = data
    store, X = stored(Xn)
    scaler = Incremental(StandardScaler(), shuffle_blocks=False, cache="1GB").fit(X)
    held = incremental.cache_info()["nbytes"]
    assert held == N * 4 * 8  # the scaler's blocks of X
    Xt = scaler.transform(X)
    Incremental(SGDClassifier(), shuffle_blocks=False).fit(Xt, yn)
    assert incremental.cache_info()["nbytes"] == held  # no transformed copy
    assert store.reads == N // CHUNK
    # with more epochs the transformed blocks serve them, then go with the fit
    Incremental(SGDClassifier(), max_epochs=3).fit(Xt, yn)
    gc.collect()
    assert incremental.cache_info()["nbytes"] == held
    assert store.reads == N // CHUNK
