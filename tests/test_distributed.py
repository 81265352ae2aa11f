"""Fitting on a dask.distributed cluster: same state, runs near the data, survives a lost worker."""

import gc
import os
import signal
import sys
import time

import cloudpickle
import dask.array as da
import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier

from incremental import Incremental

distributed = pytest.importorskip("distributed")

# Workers in other processes must be able to load the estimator class below.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def data():
    rng = np.random.default_rng(8)
    Xn = rng.normal(size=(1200, 5))
    yn = (Xn[:, 0] - Xn[:, 2] > 0).astype(int)
    return da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)


def local_fit(X, y, **params):
    return Incremental(SGDClassifier(random_state=0), random_state=0, **params).fit(
        X, y
    )


@pytest.mark.parametrize("params", [{}, {"max_epochs": 2, "batch_size": 250}])
def test_cluster_fit_equals_local_fit(client, data, params):
    X, y = data
    ours = local_fit(X, y, **params)  # the Client is active: runs on the cluster
    with _local_scheduler():
        expected = local_fit(X, y, **params)
    np.testing.assert_array_equal(ours.coef_, expected.coef_)
    assert ours.n_blocks_seen_ == expected.n_blocks_seen_
    assert ours.history_[-1]["n_samples"] == 1200


def test_classes_are_found_on_the_workers(client, data, monkeypatch):
    from incremental import _classes

    monkeypatch.setattr(_classes, "CLASSES_TASK_BYTES", 0)  # every block a task
    X, y = data
    y = client.persist(y * 3 - 1)  # labels -1 and 2, on the workers
    distributed.wait(y)
    with distributed.get_task_stream(client) as stream:
        model = Incremental(SGDClassifier(random_state=0), random_state=0).fit(X, y)
    searched = [t for t in stream.data if "incremental-map" in str(t["key"])]
    assert len(searched) == 12  # one per block of y, run by the workers
    assert model.classes_.tolist() == [-1, 2]


def test_partial_fit_runs_where_the_block_is(client, data):
    X, y = data
    X, y = client.persist(X), client.persist(y)  # blocks live on the workers now
    distributed.wait([X, y])
    home = {key[1]: workers[0] for key, workers in client.who_has(X).items()}
    assert len(set(home.values())) == 2  # spread over both workers
    with distributed.get_task_stream(client) as stream:
        local_fit(X, y, shuffle_blocks=False)
    fits = [t for t in stream.data if str(t["key"]).startswith("incremental-fit")]
    assert len(fits) == 12
    ran_at_home = sum(
        t["worker"] == home[int(t["key"].rsplit("-", 1)[1])] for t in fits
    )
    assert ran_at_home >= 10  # the scheduler may move one or two; the data stays


def _log(path, what, block):
    with open(path, "a") as log:
        log.write(f"{what} {block}\n")


def _logged_read(block, path, block_info=None):
    _log(path, "read", block_info[0]["chunk-location"][0])
    return block


class LoggedFits(SGDClassifier):
    """Logs the end of each partial_fit to ``log``, by the first value of
    its block."""

    def __init__(self, log=None):
        super().__init__()
        self.log = log

    def partial_fit(self, X, y, classes=None):
        super().partial_fit(X, y, classes=classes)
        _log(self.log, "fitted", int(X[0, 0]))
        return self


def test_cluster_holds_at_most_prefetch_blocks(client, tmp_path):
    """A block is asked for only once the fit ``prefetch`` blocks before it
    is done: reading ahead never holds more than ``prefetch`` blocks."""
    n, prefetch, log = 10, 3, str(tmp_path / "events")
    Xn = np.zeros((n * 50, 2))
    Xn[:, 0] = np.repeat(np.arange(n), 50)  # each block says its number
    yn = np.tile([0, 1], n * 25)
    X = da.from_array(Xn, chunks=(50, 2)).map_blocks(_logged_read, log, dtype=float)
    y = da.from_array(yn, chunks=50)
    model = Incremental(LoggedFits(log), shuffle_blocks=False, prefetch=prefetch)
    model.fit(X, y, classes=[0, 1])
    with open(log) as events:
        order = {line.strip(): i for i, line in enumerate(events)}
    assert len(order) == 2 * n
    for k in range(prefetch, n):
        assert order[f"fitted {k - prefetch}"] < order[f"read {k}"], k


class SlowFits(SGDClassifier):
    """partial_fit takes 0.15 s longer: the client waits for each fit."""

    def partial_fit(self, X, y, classes=None):
        time.sleep(0.15)
        return super().partial_fit(X, y, classes=classes)


def test_cluster_fit_lets_go_of_every_block(client, data):
    """Blocks are let go of as soon as their fit is settled, not when the
    garbage collector runs: the client's waiting keeps no reference to
    them (it once did, in cycles with the timeouts of its polling)."""
    X, y = data
    X, y = X[:600], y[:600]
    gc.disable()  # what is held in cycles stays held
    try:
        Incremental(SlowFits(), shuffle_blocks=False, prefetch=2).fit(
            X, y, classes=[0, 1]
        )
        for _ in range(50):  # the workers hear of released keys shortly
            held = [
                key
                for keys in client.has_what().values()
                for key in keys
                if isinstance(key, tuple) and key[0] in (X.name, y.name)
            ]
            if not held:
                break
            time.sleep(0.1)
    finally:
        gc.enable()
    assert held == []


class DiesOnce(SGDClassifier):
    """Kills the worker process it runs in, once, at its fifth partial_fit."""

    def __init__(self, flag=None, random_state=None):
        super().__init__(random_state=random_state)
        self.flag = flag

    def partial_fit(self, X, y, classes=None):
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ == 5 and self.flag and _created(self.flag):
            os._exit(1)  # the worker dies mid-fit, with the model it held
        return super().partial_fit(X, y, classes=classes)


def test_lost_worker_does_not_change_the_result(data, tmp_path):
    X, y = data
    flag = str(tmp_path / "killed")
    with _local_scheduler():
        expected = Incremental(DiesOnce(random_state=0), random_state=0).fit(X, y)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ours = Incremental(DiesOnce(flag=flag, random_state=0), random_state=0).fit(
            X, y
        )
    assert os.path.exists(flag), "no worker was killed"
    np.testing.assert_array_equal(ours.coef_, expected.coef_)
    assert ours.n_blocks_seen_ == 12


def _local_scheduler():
    import dask

    return dask.config.set(scheduler="threads")


class FailsOnThirdCall(SGDClassifier):
    """Raises on its third partial_fit, before changing anything."""

    def partial_fit(self, X, y, classes=None):
        calls = getattr(self, "calls_", 0)
        if calls == 2:
            raise RuntimeError("bad block")
        super().partial_fit(X, y, classes=classes)
        self.calls_ = calls + 1
        return self


class InterruptsOnSecondCall(SGDClassifier):
    """Sends Ctrl-C to this process during its second partial_fit."""

    def partial_fit(self, X, y, classes=None):
        super().partial_fit(X, y, classes=classes)
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return self


def plain_blocks(X, y, n):
    model = SGDClassifier(random_state=0)
    for i in range(n):
        Xb, yb = X.blocks[i].compute(), y.blocks[i].compute()
        model.partial_fit(Xb, yb, classes=[0, 1])
    return model


def test_failure_on_cluster_keeps_the_model_before_the_failing_block(client, data):
    X, y = data
    model = Incremental(FailsOnThirdCall(random_state=0), shuffle_blocks=False)
    with pytest.raises(RuntimeError, match="bad block") as info:
        model.fit(X, y, classes=[0, 1])
    assert any("block 2" in note for note in info.value.__notes__)
    assert model.n_blocks_seen_ == 2
    np.testing.assert_array_equal(model.coef_, plain_blocks(X, y, 2).coef_)
    # the user can go on from there with the blocks not yet fitted
    model.estimator_.calls_ = 3  # past the failing call
    for i in range(2, X.numblocks[0]):
        model.partial_fit(X.blocks[i], y.blocks[i])
    np.testing.assert_array_equal(model.coef_, plain_blocks(X, y, X.numblocks[0]).coef_)


def test_ctrl_c_on_cluster_keeps_finished_blocks_consistent(client, data):
    X, y = data
    model = Incremental(
        InterruptsOnSecondCall(random_state=0), shuffle_blocks=False, prefetch=2
    )
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, y, classes=[0, 1])
    seen = model.n_blocks_seen_
    assert 2 <= seen < X.numblocks[0]  # stopped early, the interrupted block done
    np.testing.assert_array_equal(model.coef_, plain_blocks(X, y, seen).coef_)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not any(
        key.startswith("incremental-fit") for key in client.who_has()
    )  # nothing left running or held on the cluster


# -- searches on a cluster: the candidates travel to the blocks --------------------------
def _search(estimator, **params):
    from incremental import HyperbandSearchCV

    grid = {"alpha": [1e-4, 1e-3, 1e-2, 1e-1], "loss": ["hinge", "log_loss"]}
    return HyperbandSearchCV(estimator, grid, max_iter=9, random_state=0, **params)


def _same_search(a, b):
    for key, value in a.cv_results_.items():
        if "time" not in key:
            np.testing.assert_array_equal(
                np.asarray(value), np.asarray(b.cv_results_[key]), err_msg=key
            )
    np.testing.assert_array_equal(a.best_estimator_.coef_, b.best_estimator_.coef_)


def test_search_fits_candidates_where_the_blocks_are(client, data):
    X0, y0 = data
    X, y = client.persist(X0), client.persist(y0)  # blocks live on the workers now
    distributed.wait([X, y])
    home = {key[1]: workers[0] for key, workers in client.who_has(X).items()}
    search = _search(SGDClassifier(random_state=0), test_size=0.2)
    with distributed.get_task_stream(client) as stream:
        search.fit(X, y, classes=[0, 1])
    fits = [t for t in stream.data if str(t["key"]).startswith("fit_group_remote")]
    n_calls = sum(search.cv_results_["partial_fit_calls"])
    assert 0 < len(fits) <= n_calls  # groups of candidates, not one task each
    with _local_scheduler():
        local = _search(SGDClassifier(random_state=0), test_size=0.2)
        local.fit(X0, y0, classes=[0, 1])
    _same_search(search, local)
    assert search.train_block_reads_ == local.train_block_reads_
    # every block the search trained on stayed on its worker: a fit ran there
    workers = {t["worker"] for t in fits}
    assert workers <= set(home.values()) and len(workers) == 2


def test_search_on_cluster_names_the_failing_candidate(client, data):
    X, y = data
    search = _search(FailsOnThirdCall(random_state=0))
    with pytest.raises(RuntimeError, match="bad block") as info:
        search.fit(X, y, classes=[0, 1])
    assert any(
        "candidate" in note and "call 3" in note for note in info.value.__notes__
    )
    assert not hasattr(search, "best_estimator_")


def _bad_block(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 3:
        raise OSError("unreadable chunk")
    return block


def test_search_on_cluster_names_the_block_that_cannot_be_computed(client, data):
    X, y = data
    X = X.map_blocks(_bad_block, dtype=X.dtype)
    with pytest.raises(OSError, match="unreadable chunk") as info:
        _search(SGDClassifier(random_state=0)).fit(X, y, classes=[0, 1])
    assert any("block 3 of 12" in note for note in info.value.__notes__)


class DiesOnceTuned(DiesOnce):
    """``DiesOnce`` with the SGD parameters the search tunes."""

    def __init__(self, flag=None, random_state=None, alpha=0.0001, loss="hinge"):
        super().__init__(flag=flag, random_state=random_state)
        self.alpha, self.loss = alpha, loss


def test_lost_worker_does_not_change_the_search(data, tmp_path):
    X, y = data
    flag = str(tmp_path / "killed")
    with _local_scheduler():
        expected = _search(DiesOnceTuned(random_state=0)).fit(X, y, classes=[0, 1])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        ours = _search(DiesOnceTuned(flag=flag, random_state=0))
        ours.fit(X, y, classes=[0, 1])
    assert os.path.exists(flag), "no worker was killed"
    _same_search(ours, expected)


class CtrlCOnce(SGDClassifier):
    """Sends Ctrl-C to its own process at its second partial_fit, once
    (the file ``flag`` says it was sent). Candidates fit at once on both
    workers: only the one that creates ``flag`` sends it (a second Ctrl-C
    would interrupt at once, as it should)."""

    def __init__(self, flag=None, alpha=0.0001):
        super().__init__(alpha=alpha, random_state=0)
        self.flag = flag

    def partial_fit(self, X, y, classes=None):
        super().partial_fit(X, y, classes=classes)
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ == 2 and _created(self.flag):
            os.kill(os.getpid(), signal.SIGINT)  # in-process workers: this one
        return self


def _created(path):
    """Create ``path``; False if it exists already (atomic across threads)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


def test_ctrl_c_on_cluster_keeps_the_search_so_far(client, data, tmp_path):
    from incremental import IncrementalSearchCV

    search = IncrementalSearchCV(
        CtrlCOnce(str(tmp_path / "sent")), {"alpha": [1e-4, 1e-2, 1.0]}, "grid",
        fits_per_score=3, max_iter=9, random_state=0,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt) as info:
        search.fit(*data, classes=[0, 1])
    assert "stopped on Ctrl-C" in "\n".join(info.value.__notes__)
    # stopped after the second block: every candidate scored again at 2 calls
    assert list(search.cv_results_["partial_fit_calls"]) == [2, 2, 2]
    assert search.best_estimator_.calls_ == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
