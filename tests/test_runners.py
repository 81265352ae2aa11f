"""Runners: one protocol, one error type, undo of a failed batch."""

import copy
import gc
import os
import signal
import sys
import threading
import time
from functools import partial

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier

from incremental import Incremental
from incremental._blocks import make_blocks
from incremental._checkpoint import Checkpoint
from incremental._runners import (
    EpochJob,
    FitError,
    LocalRunner,
    choose_runner,
    partial_fit_batch,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N, CHUNK = 500, 100


@pytest.fixture
def data():
    rng = np.random.default_rng(2)
    Xn = rng.normal(size=(N, 3))
    yn = (Xn[:, 0] > 0).astype(int)
    return Xn, yn, da.from_array(Xn, chunks=CHUNK), da.from_array(yn, chunks=CHUNK)


def job_for(X, y, **constant):
    blocks = make_blocks(X, y)
    batches = [[(i, None)] for i in range(blocks.n_blocks)]
    fit = partial(partial_fit_batch, constant=constant)
    return EpochJob(blocks, batches, fit, prefetch=2, group=1, epoch=0)


def _fail_at(block, block_info=None, bad=2):
    if block_info[0]["chunk-location"][0] == bad:
        raise OSError("unreadable")
    return block


def test_local_runner_reports_each_batch_in_order(data):
    _, _, X, y = data
    reports = []
    model = SGDClassifier(random_state=0)
    LocalRunner().run(
        model, job_for(X, y, classes=[0, 1]), lambda m, rows: reports.append((m, rows))
    )
    assert [rows for _, rows in reports] == [CHUNK] * 5
    assert all(m is model for m, _ in reports)


def test_failure_while_computing_says_so(data):
    _, _, X, y = data
    broken = X.map_blocks(_fail_at, dtype=X.dtype)
    with pytest.raises(FitError) as info:
        LocalRunner().run(
            SGDClassifier(), job_for(broken, y, classes=[0, 1]), lambda m, r: None
        )
    assert info.value.phase == "computing" and info.value.position == 2
    assert isinstance(info.value.error, OSError) and info.value.consistent


class Uncopyable:
    def __deepcopy__(self, memo):
        raise TypeError("cannot copy this")


class CopiesOnlyBeforeFitting(ClassifierMixin, BaseEstimator):
    """Counts labels; once fitted its state cannot be copied; fails on request
    after updating its state (a half-updated model)."""

    def __init__(self, fail_on_call=None, uncopyable_from_start=False):
        self.fail_on_call = fail_on_call
        self.uncopyable_from_start = uncopyable_from_start
        if uncopyable_from_start:
            self.handle = Uncopyable()

    def partial_fit(self, X, y, classes=None):
        self.calls_ = getattr(self, "calls_", 0) + 1
        if not hasattr(self, "counts_"):
            self.classes_ = np.asarray(classes)
            self.counts_ = np.zeros(len(classes))
        self.handle_ = Uncopyable()  # fitted state that deepcopy refuses
        self.counts_ += [np.sum(y == c) for c in self.classes_]
        if self.calls_ == self.fail_on_call:
            raise RuntimeError("bad block")
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def test_checkpoint_keeps_the_last_good_copy():
    checkpoint = Checkpoint()
    checkpoint.maybe_save({"state": 1}, position=0)
    checkpoint.fit_seconds = 1e9  # a new copy is due ...
    checkpoint.maybe_save(Uncopyable(), position=3)  # ... and fails
    assert checkpoint.model == {"state": 1} and checkpoint.position == 0
    replayed = []
    restored = checkpoint.restore(lambda m, positions: replayed.extend(positions), 4)
    assert restored == {"state": 1} and replayed == [0, 1, 2, 3]


@pytest.mark.parametrize("fail_on_call", [1, 4])
def test_estimator_that_stops_being_copyable_is_still_undone(
    data, monkeypatch, fail_on_call
):
    import incremental._checkpoint as module

    monkeypatch.setattr(module, "CHECKPOINT_BUDGET", 1e9)  # copy before each batch
    Xn, yn, X, y = data
    model = Incremental(CopiesOnlyBeforeFitting(fail_on_call), shuffle_blocks=False)
    with pytest.raises(RuntimeError, match="bad block") as info:
        model.fit(X, y)
    seen = fail_on_call - 1
    assert model.n_blocks_seen_ == seen
    expected = [np.sum(yn[: seen * CHUNK] == c) for c in (0, 1)]
    if seen:
        np.testing.assert_array_equal(model.counts_, expected)
    else:
        assert not hasattr(model.estimator_, "counts_")
    notes = "\n".join(info.value.__notes__)
    assert "estimator_ holds the model after the" in notes


def test_estimator_never_copyable_is_said_to_be_not_undone(data):
    _, _, X, y = data
    model = Incremental(
        CopiesOnlyBeforeFitting(fail_on_call=3, uncopyable_from_start=True),
        shuffle_blocks=False,
    )
    with pytest.raises(RuntimeError, match="bad block") as info:
        model.fit(X, y)
    notes = "\n".join(info.value.__notes__)
    assert "could not be copied" in notes and "was not undone" in notes
    assert "estimator_ holds the model after" not in notes
    assert model.n_blocks_seen_ == 2


def test_choose_runner_is_local_without_a_client():
    assert isinstance(choose_runner(), LocalRunner)


# -- on a cluster ------------------------------------------------------------------
distributed = pytest.importorskip("distributed")


class SlowAfterSecondCall(SGDClassifier):
    """Sends Ctrl-C during its second partial_fit; later calls are slow."""

    def partial_fit(self, X, y, classes=None):
        super().partial_fit(X, y, classes=classes)
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ == 2:
            os.kill(os.getpid(), signal.SIGINT)
        elif self.calls_ > 2:
            time.sleep(0.5)  # a fit slow enough for Ctrl-C to be noticed first
        return self


def test_ctrl_c_on_cluster_is_heard_while_waiting_for_the_last_fits(client, data):
    # Fewer blocks than prefetch: every fit is submitted at once, and the
    # interrupt arrives while waiting for them to finish.
    Xn, yn, X, y = data
    model = Incremental(SlowAfterSecondCall(random_state=0), shuffle_blocks=False)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt) as info:
        model.fit(X, y, classes=[0, 1])
    assert time.perf_counter() - started < 5 * 0.5  # did not run to the end
    seen = model.n_blocks_seen_
    assert 2 <= seen < X.numblocks[0]
    reference = SGDClassifier(random_state=0)
    for b in range(seen):
        rows = slice(b * CHUNK, (b + 1) * CHUNK)
        reference.partial_fit(Xn[rows], yn[rows], classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    assert "interrupted after block" in "\n".join(info.value.__notes__)
    gc.collect()  # tracebacks and frames form cycles; futures go with them
    assert _cluster_lets_go(client, "incremental-fit")


def _cluster_lets_go(client, prefix, timeout=10.0):
    """Whether the cluster holds no key starting with ``prefix`` within
    ``timeout`` (a cancelled task still running finishes first)."""
    deadline = time.monotonic() + timeout
    while any(str(k).startswith(prefix) for k in client.who_has()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cluster_failure_while_computing_is_named_as_such(client, data):
    _, _, X, y = data
    broken = X.map_blocks(_fail_at, dtype=X.dtype)
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    with pytest.raises(OSError, match="unreadable") as info:
        model.fit(broken, y, classes=[0, 1])
    assert "raised while computing block 2 of 5" in "\n".join(info.value.__notes__)
    assert model.n_blocks_seen_ == 2


def test_runners_share_one_protocol():
    from incremental._runners import ClusterRunner

    for runner in (LocalRunner, ClusterRunner):
        assert callable(runner.run)
    assert issubclass(FitError, Exception)
    assert copy.copy(FitError(ValueError(), position=1, phase="fitting")).phase == (
        "fitting"
    )
    assert threading.current_thread() is threading.main_thread()


@pytest.mark.parametrize("workers, held", [(1, 2), (2, 3), (4, 5)])
def test_auto_prefetch_holds_one_large_block_more_than_the_cores(
    monkeypatch, workers, held
):
    # Large blocks (11 MB) are read one per call, one per core while the
    # next waits: more held ahead reads no faster and only takes memory.
    from incremental._runners import local

    made = []
    real = local.BlockStream

    def spy(*args, **kwargs):
        made.append((kwargs["prefetch"], kwargs["readers"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "BlockStream", spy)
    X = da.random.default_rng(0).random((6 * 70_000, 20), chunks=(70_000, 20))
    y = (X[:, 0] > 0.5).astype(int)
    with dask.config.set(num_workers=workers):
        Incremental(SGDClassifier(random_state=0)).fit(X, y)
    assert made == [(held, held)]
