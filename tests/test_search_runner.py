"""The search's runner: the stream of batches, many fits, many scores."""

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

from incremental._blocks import make_blocks
from incremental._runners import partial_fit_batch
from incremental._scoring import STREAMING_METRICS, score_blocks
from incremental._search._runner import (
    BatchSource,
    FeedError,
    Fitter,
    Validation,
    search_threads,
)
from incremental._search._schedule import StreamOrder

N, CHUNK = 600, 100


@pytest.fixture
def blocks():
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(N, 3))
    yn = (Xn[:, 0] > 0).astype(int)
    X = da.from_array(Xn, chunks=CHUNK).map_blocks(np.copy, dtype=float)
    return make_blocks(X, da.from_array(yn, chunks=CHUNK))


def order_of(n_blocks=6, seed=0):
    return StreamOrder(np.arange(n_blocks), np.random.RandomState(seed))


def first_values(batch):
    return float(batch["X"][0, 0])


def test_batch_source_reads_each_position_once_in_order(blocks):
    order = order_of()
    source = BatchSource(blocks, order, dask.threaded.get, prefetch=4, group=2)
    got = [first_values(source.at(p)) for p in range(9)]
    expected = [
        first_values(blocks.compute([order.batch(p)[0][0]])[0]) for p in range(9)
    ]
    assert got == expected
    source.close()
    # prefetching ran ahead within the second pass, at most `prefetch` blocks
    assert 9 <= source.reads <= 9 + 4 + 2


def test_batch_source_stops_computing_ahead_at_the_limit(blocks):
    source = BatchSource(blocks, order_of(), dask.threaded.get, 8, 4, limit=7)
    for p in range(7):
        source.at(p)
    source.close()
    assert source.reads == 7
    # positions past the limit still come (streamed to the end of their pass)
    order = order_of()
    source = BatchSource(blocks, order, dask.threaded.get, 8, 4, limit=2)
    got = [first_values(source.at(p)) for p in range(4)]
    source.close()
    assert got == [
        first_values(blocks.compute([order.batch(p)[0][0]])[0]) for p in range(4)
    ]


def test_batch_source_reads_again_a_position_asked_for_again(blocks):
    order = order_of()
    source = BatchSource(blocks, order, dask.threaded.get, prefetch=1, group=1, limit=5)
    values = [first_values(source.at(p)) for p in range(5)]
    assert first_values(source.at(1)) == values[1]
    source.close()
    assert source.reads == 6


def _fail(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 3:
        raise OSError("unreadable")
    return block


def test_a_block_that_cannot_be_computed_is_named(blocks):
    X = da.ones((N, 3), chunks=CHUNK).map_blocks(_fail, dtype=float)
    broken = make_blocks(X, da.zeros(N, chunks=CHUNK))
    order = order_of()
    position = [b[0][0] for b in order.epoch(0)].index(3)
    source = BatchSource(broken, order, dask.threaded.get, prefetch=2, group=1)
    with pytest.raises(OSError) as info:
        for p in range(6):
            source.at(p)
    source.close()
    note = "\n".join(info.value.__notes__)
    assert f"block 3 of 6 (rows 300:400), position {position}" in note


def test_fitter_threads_change_nothing(blocks):
    batch = blocks.compute([0])[0]
    fit = partial(partial_fit_batch, constant={"classes": [0, 1]})
    models = {}
    for threads in (1, 4):
        fitter = Fitter(fit, threads)
        models[threads] = [
            SGDClassifier(alpha=a, random_state=0) for a in (1e-4, 1e-2, 1)
        ]
        for _ in range(3):
            seconds = fitter.feed(models[threads], batch).seconds
        fitter.close()
        assert len(seconds) == 3 and all(s >= 0 for s in seconds)
    for a, b in zip(models[1], models[4]):
        np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("threads", [1, 3])
def test_fitter_names_the_first_failing_model(blocks, threads):
    batch = blocks.compute([0])[0]
    fit = partial(partial_fit_batch, constant={"classes": [0, 1]})
    models = [SGDClassifier(), SGDClassifier(alpha=-1.0), SGDClassifier(eta0=-1.0)]
    fitter = Fitter(fit, threads)
    with pytest.raises(FeedError) as info:
        fitter.feed(models, batch)
    fitter.close()
    assert info.value.index == 1 and isinstance(info.value.error, ValueError)


def test_an_empty_batch_is_a_call_with_nothing_to_fit():
    fitter = Fitter(lambda model, batch: model.append(1), threads=2)
    models = [[], []]
    assert fitter.feed(models, {"X": np.empty((0, 3))}).seconds == [0.0, 0.0]
    assert models == [[], []]


@pytest.mark.parametrize("groups", [1, 2, 5])
def test_validation_scores_many_models_in_one_scheduler_call(blocks, groups):
    fit = partial(partial_fit_batch, constant={"classes": [0, 1]})
    models = [SGDClassifier(alpha=a, random_state=0) for a in (1e-4, 1e-3, 1e-2, 1)]
    Fitter(fit, 1).feed(models, blocks.compute([0])[0])
    calls = []

    def counting(graph, keys, **kwargs):
        calls.append(len(keys))
        return dask.threaded.get(graph, keys, **kwargs)

    metric = STREAMING_METRICS["accuracy"]
    validation = Validation(metric, blocks, [4, 5], counting, groups)
    scores = validation.score(models)
    assert len(calls) == 1 and validation.reads == 2
    expected = [score_blocks(m, metric, blocks, [4, 5]) for m in models]
    assert [s for s, _ in scores] == expected


def test_search_threads_follow_dask_config():
    assert search_threads(dask.local.get_sync) == 1
    with dask.config.set(num_workers=3):
        assert search_threads(dask.threaded.get) == 3


def test_validation_from_the_block_cache_reads_each_block_once():
    rng = np.random.default_rng(2)
    Xn = rng.normal(size=(N, 3))
    X = da.from_array(Xn, chunks=CHUNK).map_blocks(np.copy, dtype=float)
    y = da.from_array((Xn[:, 0] > 0).astype(int), chunks=CHUNK)
    cached = make_blocks(X, y, cache_budget=10**8)
    try:
        fit = partial(partial_fit_batch, constant={"classes": [0, 1]})
        models = [SGDClassifier(alpha=a, random_state=0) for a in (1e-4, 1e-2, 1)]
        Fitter(fit, 1).feed(models, cached.compute([0])[0])
        metric = STREAMING_METRICS["accuracy"]
        with ThreadPoolExecutor(2) as pool:
            validation = Validation(metric, cached, [4, 5], dask.threaded.get, 2, pool)
            first, again = validation.score(models), validation.score(models)
        assert validation.reads == 2  # the second pass found both in the cache
        expected = [score_blocks(m, metric, make_blocks(X, y), [4, 5]) for m in models]
        assert [s for s, _ in first] == [s for s, _ in again] == expected
    finally:
        cached.close()
