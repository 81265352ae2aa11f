"""Epochs, re-batching, early stopping, history and progress of ``Incremental``."""

import logging

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.callbacks import Callback
from dask.diagnostics import Profiler, ProgressBar
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.utils import check_random_state

from incremental import Incremental

N, CHUNK = 600, 100


@pytest.fixture
def data():
    rng = np.random.default_rng(5)
    Xn = rng.normal(size=(N, 4))
    yn = (Xn[:, 0] + 0.5 * Xn[:, 1] + rng.normal(scale=0.3, size=N) > 0).astype(int)
    return Xn, yn, da.from_array(Xn, chunks=CHUNK), da.from_array(yn, chunks=CHUNK)


def test_epochs_reshuffle_from_one_random_state(data):
    Xn, yn, X, y = data
    model = Incremental(
        SGDClassifier(random_state=0), max_epochs=3, random_state=11
    ).fit(X, y)
    ref = SGDClassifier(random_state=0)
    rng = check_random_state(11)
    orders = [rng.permutation(np.arange(6)) for _ in range(3)]
    for order in orders:
        for b in order:
            ref.partial_fit(
                Xn[b * CHUNK : (b + 1) * CHUNK],
                yn[b * CHUNK : (b + 1) * CHUNK],
                classes=[0, 1],
            )
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    assert len({tuple(o) for o in orders}) > 1  # the order really changes
    assert model.n_epochs_ == 3 and model.n_blocks_seen_ == 18
    assert [r["epoch"] for r in model.history_] == [0, 1, 2]
    assert all(r["n_samples"] == N and r["n_batches"] == 6 for r in model.history_)
    assert all(r["seconds"] > 0 and r["score"] is None for r in model.history_)


@pytest.mark.parametrize("batch_size", [1, 37, 100, 250, 1000])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batch_size_equals_the_plain_loop_over_batches(data, batch_size, shuffle):
    Xn, yn, _, _ = data
    sizes = (90, 10, 200, 3, 297)  # uneven storage chunks
    X, y = da.from_array(Xn, chunks=(sizes, 4)), da.from_array(yn, chunks=50)
    model = Incremental(
        SGDClassifier(random_state=0),
        batch_size=batch_size,
        shuffle_blocks=shuffle,
        random_state=3,
    ).fit(X, y)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    order = check_random_state(3).permutation(5) if shuffle else range(5)
    rows = np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in order])
    ref = SGDClassifier(random_state=0)
    for start in range(0, N, batch_size):
        batch = rows[start : start + batch_size]
        ref.partial_fit(Xn[batch], yn[batch], classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)
    assert model.n_blocks_seen_ == -(-N // batch_size)


def test_batch_size_on_dataframe_with_unknown_lengths(data):
    Xn, yn, _, _ = data
    frame = pd.DataFrame(Xn).assign(t=yn)
    ddf = dd.from_pandas(frame, npartitions=4).clear_divisions()
    model = Incremental(
        SGDClassifier(random_state=0), batch_size=64, shuffle_blocks=False
    )
    model.fit(ddf[[0, 1, 2, 3]], ddf["t"])
    ref = SGDClassifier(random_state=0)
    for start in range(0, N, 64):
        ref.partial_fit(
            frame[[0, 1, 2, 3]][start : start + 64],
            yn[start : start + 64],
            classes=[0, 1],
        )
    np.testing.assert_array_equal(model.coef_, ref.coef_)


def test_empty_partitions_are_skipped_in_fit(data):
    Xn, yn, _, _ = data
    frame = pd.DataFrame(Xn).assign(t=yn)
    ddf = dd.from_pandas(frame, npartitions=6).map_partitions(
        lambda p: p[p.index < 250]
    )
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(ddf[[0, 1, 2, 3]], ddf["t"])
    assert model.n_blocks_seen_ == 3
    ref = SGDClassifier(random_state=0)
    for part in [frame[:100], frame[100:200], frame[200:250]]:
        ref.partial_fit(part[[0, 1, 2, 3]], part["t"], classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, ref.coef_)


def test_early_stopping_on_held_out_blocks(data):
    _, _, X, y = data
    model = Incremental(
        SGDClassifier(random_state=0, learning_rate="constant", eta0=1e-5),
        max_epochs=50,
        early_stopping=True,
        n_iter_no_change=2,
        tol=0.5,
        validation_fraction=0.2,
        random_state=0,
        scoring="accuracy",
    ).fit(X, y)
    # A tolerance of 0.5 in accuracy is never met: stop after 1 + 2 epochs.
    assert model.n_epochs_ == 3
    scores = [r["score"] for r in model.history_]
    assert all(0 <= s <= 1 for s in scores)
    assert model.best_score_ == max(scores)
    # One of six blocks (20 %, rounded) was held out and never trained on.
    assert all(r["n_batches"] == 5 for r in model.history_)
    assert model.n_blocks_seen_ == 15


def test_early_stopping_keeps_the_best_epoch(data):
    Xn, yn, X, y = data
    X_val, y_val = (
        da.from_array(Xn[:200], chunks=50),
        da.from_array(yn[:200], chunks=50),
    )
    model = Incremental(
        SGDRegressor(random_state=0, learning_rate="constant", eta0=0.2),
        max_epochs=8,
        early_stopping=True,
        n_iter_no_change=3,
        random_state=0,
        scoring="neg_mean_squared_error",
    ).fit(X, yn * 1.0, validation_data=(X_val, y_val * 1.0))
    best = model.best_score_
    assert best == max(r["score"] for r in model.history_)
    assert model.score(X_val, y_val * 1.0) == pytest.approx(best)
    assert all(r["n_batches"] == 6 for r in model.history_)  # nothing held out


def test_huge_max_epochs_with_early_stopping_starts_at_once(data):
    _, _, X, y = data
    model = Incremental(
        SGDClassifier(random_state=0),
        max_epochs=10**9,
        early_stopping=True,
        n_iter_no_change=2,
        tol=10.0,  # no epoch can improve this much: stops after three
        random_state=0,
    ).fit(X, y)
    assert model.n_epochs_ == 3


def test_early_stopping_errors(data):
    _, _, X, y = data
    with pytest.raises(ValueError, match="leaving none to train on"):
        Incremental(SGDClassifier(), early_stopping=True, validation_fraction=0.9).fit(
            X[:200], y[:200]
        )
    with pytest.raises(
        ValueError, match="scoring='f1' cannot be computed block by block"
    ):
        Incremental(SGDClassifier(), early_stopping=True, scoring="f1").fit(X, y)
    with pytest.raises(ValueError, match="only used with early_stopping"):
        Incremental(SGDClassifier()).fit(X, y, validation_data=(X, y))


@pytest.mark.parametrize(
    "params,match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_epochs": 2.5}, "max_epochs"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"early_stopping": "yes"}, "early_stopping"),
        ({"tol": float("nan")}, "tol"),
        ({"verbose": -1}, "verbose"),
    ],
)
def test_invalid_epoch_params(data, params, match):
    _, _, X, y = data
    with pytest.raises(ValueError, match=match):
        Incremental(SGDClassifier(), **params).fit(X, y)


def test_progress_bar_and_log_records(data, capsys, caplog):
    _, _, X, y = data
    with caplog.at_level(logging.INFO, logger="incremental"):
        Incremental(SGDClassifier(random_state=0), max_epochs=2, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "batch" in err
    epochs = [r.getMessage() for r in caplog.records if r.name == "incremental"]
    assert len(epochs) == 2 and "epoch 1: 6 batches, 600 rows" in epochs[0]


def test_silent_by_default(data, capsys):
    _, _, X, y = data
    Incremental(SGDClassifier(random_state=0), max_epochs=2).fit(X, y)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_dask_profiler_sees_the_block_computations(data):
    _, _, X, y = data
    Z = X * 2.0  # a real task per block for the profiler to see
    with Profiler() as profiler:
        Incremental(SGDClassifier(random_state=0), prefetch=2).fit(Z, y)
    keys = {str(r.key) for r in profiler.results}
    assert any("mul" in k for k in keys)
    assert len(profiler.results) >= 6


@pytest.mark.parametrize("max_epochs", [1, 3])
def test_dask_progress_bar_draws_one_bar_per_epoch(data, max_epochs):
    import io

    _, _, X, y = data
    out = io.StringIO()
    model = Incremental(
        SGDClassifier(random_state=0), prefetch=2, max_epochs=max_epochs, cache=False
    )  # without the block cache, every epoch computes its blocks
    with ProgressBar(out=out), Profiler() as profiler:
        model.fit(X * 2.0, y, classes=[0, 1])  # a real task per block to profile
    # one finished bar per epoch, though the blocks took many scheduler calls
    assert out.getvalue().count("100% Completed") == max_epochs
    # still sees every block X * 2.0 computes (y's blocks are data in the graph)
    assert sum("mul" in str(r.key) for r in profiler.results) == 6 * max_epochs
    assert Callback.active == set()  # the bar is put back, then leaves with `with`


def test_dask_progress_bar_after_a_failed_fit_is_closed_and_kept(data):
    import io

    _, _, X, y = data
    out = io.StringIO()
    bar = ProgressBar(out=out)
    bar.register()
    try:
        with pytest.raises(ValueError):
            Incremental(SGDClassifier(random_state=0)).fit(X, y, classes=[5, 6])
        assert bar._callback in Callback.active  # still registered for the user
        assert "100% Completed" not in out.getvalue()  # the epoch did not finish
        X.sum().compute()
        assert "100% Completed" in out.getvalue()  # and it keeps working
    finally:
        bar.unregister()


def test_respects_the_configured_scheduler(data):
    _, _, X, y = data
    calls = []

    def counting_get(dsk, keys, **kwargs):
        calls.append(len(keys))
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get):
        Incremental(SGDClassifier(random_state=0), prefetch=2).fit(X * 2.0, y + 0)
    assert sum(calls) >= 12  # X and y of six blocks went through our scheduler


def test_blocks_held_in_the_graph_are_not_sent_to_the_scheduler(data):
    # from_array on NumPy puts the blocks themselves in the graph: a scheduler
    # call would only hand them back. A computed y still goes through it.
    Xn, yn, X, y = data
    sgd = SGDClassifier(random_state=0)
    calls = []

    def counting_get(dsk, keys, **kwargs):
        calls.append(len(keys))
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get):
        ours = Incremental(sgd, shuffle_blocks=False).fit(X, y, classes=[0, 1])
    assert calls == []
    with dask.config.set(scheduler=counting_get):
        mixed = Incremental(sgd, shuffle_blocks=False).fit(X, y + 0, classes=[0, 1])
    assert sum(calls) == X.numblocks[0]  # y's blocks only
    plain = SGDClassifier(random_state=0)
    for start in range(0, N, CHUNK):
        plain.partial_fit(Xn[start : start + CHUNK], yn[start : start + CHUNK], [0, 1])
    for model in (ours, mixed):
        np.testing.assert_array_equal(model.estimator_.coef_, plain.coef_)
