"""The search classes: exact candidates, one read per position, reproducible
results, dask-ml's outputs, delegation, errors and Ctrl-C."""

import logging
import os
import pickle
import signal
import sys
import threading
from collections import Counter

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy.stats import loguniform, randint
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.linear_model import LinearRegression, SGDClassifier, SGDRegressor
from sklearn.utils import check_random_state

from incremental import (
    HyperbandSearchCV,
    IncrementalSearchCV,
    NotStreamableError,
    SuccessiveHalvingSearchCV,
)
from incremental._search._results import TIMING_COLUMNS

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N, CHUNK, N_BLOCKS = 1200, 100, 12
PARAMS = {"alpha": loguniform(1e-5, 1e-1), "loss": ["hinge", "log_loss"]}


@pytest.fixture(scope="module")
def numpy_data():
    rng = np.random.default_rng(0)
    Xn = rng.normal(size=(N, 4))
    yn = (Xn[:, 0] + 0.5 * Xn[:, 1] + 0.5 * rng.normal(size=N) > 0).astype(int)
    return Xn, yn


@pytest.fixture
def data(numpy_data):
    Xn, yn = numpy_data
    return da.from_array(Xn, chunks=(CHUNK, 4)), da.from_array(yn, chunks=CHUNK)


def _times_one(block):
    return block * 1.0


def sgd():
    return SGDClassifier(random_state=0)


def stream(random_state, n_blocks=N_BLOCKS, n_calls=40, held_out=True):
    """The documented block sequence: held-out draw, then permutations."""
    rng = check_random_state(random_state)
    train = np.arange(n_blocks)
    if held_out:
        held = np.sort(rng.permutation(n_blocks)[:1])
        train = np.setdiff1d(train, held)
    seq = []
    while len(seq) < n_calls:
        seq.extend(int(b) for b in rng.permutation(train))
    return seq[:n_calls]


def plain_loop(params, seq, Xn, yn):
    model = clone(sgd()).set_params(**params)
    for b in seq:
        rows = slice(b * CHUNK, (b + 1) * CHUNK)
        model.partial_fit(Xn[rows], yn[rows], classes=[0, 1])
    return model


def same_results(a, b):
    assert set(a) == set(b)
    for key in a:
        if key in TIMING_COLUMNS:
            continue
        if key == "params":
            assert list(a[key]) == list(b[key])
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# -- exactness ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "search",
    [
        IncrementalSearchCV(
            sgd(), PARAMS, n_initial_parameters=4, max_iter=15, random_state=1
        ),
        SuccessiveHalvingSearchCV(sgd(), PARAMS, 9, 2, random_state=2),
        HyperbandSearchCV(sgd(), PARAMS, max_iter=13, random_state=3),
    ],
    ids=["incremental", "halving", "hyperband"],
)
def test_best_model_equals_its_own_plain_loop(search, data, numpy_data):
    search.fit(*data)
    calls = int(search.cv_results_["partial_fit_calls"][search.best_index_])
    expected = plain_loop(
        search.best_params_, stream(search.random_state, n_calls=calls), *numpy_data
    )
    np.testing.assert_array_equal(search.best_estimator_.coef_, expected.coef_)
    np.testing.assert_array_equal(
        search.best_estimator_.intercept_, expected.intercept_
    )
    # the scores are the accuracy of that model on the held-out block
    held = search.validation_blocks_[0]
    rows = slice(held * CHUNK, (held + 1) * CHUNK)
    assert search.best_score_ == expected.score(
        numpy_data[0][rows], numpy_data[1][rows]
    )


class Recorder(ClassifierMixin, BaseEstimator):
    """Remembers the first value of every block it was fed, per ``tag``."""

    seen: dict = {}
    lock = threading.Lock()

    def __init__(self, tag=0):
        self.tag = tag

    def partial_fit(self, X, y, classes=None):
        with self.lock:
            self.seen.setdefault(self.tag, []).append(int(X[0, 0]))
        self.classes_ = np.asarray(classes)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[self.tag % 2])


def test_every_candidate_follows_the_one_stream():
    Xn = np.repeat(np.arange(N_BLOCKS), CHUNK)[:, None].astype(float)
    yn = np.arange(N) % 2
    X, y = da.from_array(Xn, chunks=CHUNK), da.from_array(yn, chunks=CHUNK)
    Recorder.seen = {}
    search = HyperbandSearchCV(
        Recorder(), {"tag": randint(0, 2**30)}, max_iter=9, random_state=4
    )
    search.fit(X, y)
    seq = stream(4, n_calls=9)
    calls = dict(
        zip(search.cv_results_["param_tag"], search.cv_results_["partial_fit_calls"])
    )
    assert len(Recorder.seen) == len(calls) == 17
    for tag, blocks in Recorder.seen.items():
        assert blocks == seq[: calls[tag]]


# -- one read per position --------------------------------------------------------------------
class CountingGet:
    """The threaded scheduler, counting how often each block of X is computed."""

    def __init__(self, name):
        self.name = name
        self.counts = Counter()

    def __call__(self, graph, keys, **kwargs):
        for key in graph:
            if isinstance(key, tuple) and key[0] == self.name:
                self.counts[key[1]] += 1
        return dask.threaded.get(graph, keys, **kwargs)


@pytest.mark.parametrize("cache, validation_reads", [(False, 3), ("auto", 1)])
def test_each_position_of_the_stream_is_read_once(data, cache, validation_reads):
    X, y = data
    X = X.map_blocks(_times_one, dtype=X.dtype)  # blocks made by tasks
    counting = CountingGet(X.name)
    search = HyperbandSearchCV(sgd(), PARAMS, max_iter=9, random_state=0, cache=cache)
    with dask.config.set(scheduler=counting):
        search.fit(X, y, classes=[0, 1])
    seq = stream(0, n_calls=9)
    held = int(search.validation_blocks_[0])
    train_counts = {b: n for b, n in counting.counts.items() if b != held}
    assert train_counts == Counter(seq)
    assert search.train_block_reads_ == 9
    # scored after 1, 3 and 9 calls: three passes over the held-out block,
    # or one with the block cache
    assert counting.counts[held] == search.validation_block_reads_ == validation_reads
    assert search.metadata_ == search.metadata


# -- reproducible -----------------------------------------------------------------------------
def test_the_cache_keeps_blocks_the_stream_passes_over_again(data):
    """11 training blocks, 20 positions: the second pass reads nothing."""
    X, y = data
    X = X.map_blocks(_times_one, dtype=X.dtype)
    counting = CountingGet(X.name)
    search = IncrementalSearchCV(sgd(), PARAMS, 2, max_iter=20, random_state=0)
    with dask.config.set(scheduler=counting):
        search.fit(X, y, classes=[0, 1])
    assert max(counting.counts.values()) == 1
    assert search.train_block_reads_ == 11 and search.validation_block_reads_ == 1
    plain = clone(search).set_params(cache=False).fit(X, y, classes=[0, 1])
    assert plain.train_block_reads_ == 20 and plain.validation_block_reads_ == 20
    same_results(search.cv_results_, plain.cv_results_)


def test_same_results_whatever_the_scheduler_and_threads(data):
    def run(**config):
        search = HyperbandSearchCV(sgd(), PARAMS, max_iter=9, random_state=5)
        with dask.config.set(**config):
            return search.fit(*data).cv_results_

    reference = run()
    same_results(reference, run())
    same_results(reference, run(scheduler="synchronous"))
    same_results(reference, run(num_workers=1))
    same_results(reference, run(num_workers=4))


def test_same_results_on_a_cluster(client, data):
    search = SuccessiveHalvingSearchCV(sgd(), PARAMS, 6, 2, random_state=6)
    on_cluster = search.fit(*data).cv_results_
    with dask.config.set(scheduler="threads"):
        local = clone(search).fit(*data).cv_results_
    same_results(on_cluster, local)


# -- outputs ------------------------------------------------------------------------------------
COMMON_KEYS = {
    "params",
    "param_alpha",
    "param_loss",
    "test_score",
    "rank_test_score",
    "mean_partial_fit_time",
    "std_partial_fit_time",
    "mean_score_time",
    "std_score_time",
    "model_id",
    "partial_fit_calls",
}
RECORD_KEYS = {
    "model_id",
    "params",
    "partial_fit_calls",
    "partial_fit_time",
    "score",
    "score_time",
    "elapsed_wall_time",
}


@pytest.fixture(scope="module")
def fitted_hyperband(numpy_data):
    Xn, yn = numpy_data
    X, y = da.from_array(Xn, chunks=(CHUNK, 4)), da.from_array(yn, chunks=CHUNK)
    return HyperbandSearchCV(sgd(), PARAMS, max_iter=9, random_state=0).fit(X, y)


def test_cv_results_layout(fitted_hyperband):
    results = fitted_hyperband.cv_results_
    assert set(results) == COMMON_KEYS | {"bracket"}
    assert all(type(v) is np.ndarray for v in results.values())
    frame = pd.DataFrame(results)
    assert len(frame) == 17 and frame["model_id"].is_unique
    assert (
        results["model_id"].dtype.kind == "U"
        and results["model_id"][0] == "bracket=2-0"
    )
    assert results["rank_test_score"].dtype == np.int64
    assert results["partial_fit_calls"].dtype == np.int64
    assert results["param_alpha"].dtype == float
    assert results["rank_test_score"].min() == 1
    order = np.argsort(-results["test_score"], kind="stable")
    assert np.all(np.diff(results["rank_test_score"][order]) >= 0)
    assert list(results["bracket"]) == sorted(results["bracket"], reverse=True)


def test_history_and_model_history(fitted_hyperband):
    search = fitted_hyperband
    assert all(set(r) == RECORD_KEYS | {"bracket"} for r in search.history_)
    times = [r["elapsed_wall_time"] for r in search.history_]
    assert times == sorted(times)
    for i, model_id in enumerate(search.cv_results_["model_id"]):
        records = search.model_history_[model_id]
        calls = [r["partial_fit_calls"] for r in records]
        assert calls == sorted(set(calls))
        assert all(any(r is h for h in search.history_) for r in records)
        last = records[-1]
        assert last["params"] == search.cv_results_["params"][i]
        assert last["score"] == search.cv_results_["test_score"][i]
        assert last["bracket"] == search.cv_results_["bracket"][i]
        assert last["partial_fit_calls"] == search.cv_results_["partial_fit_calls"][i]


def test_best_attributes(fitted_hyperband):
    search = fitted_hyperband
    assert type(search.best_index_) is int
    assert search.best_score_ == search.cv_results_["test_score"][search.best_index_]
    assert search.best_params_ == search.cv_results_["params"][search.best_index_]
    assert isinstance(search.best_estimator_, SGDClassifier)
    assert search.best_estimator_.get_params()["alpha"] == search.best_params_["alpha"]
    assert search.n_splits_ == 1 and search.multimetric_ is False
    # the best is the best model still in the race at the end
    survivors = [
        i
        for i, calls in enumerate(search.cv_results_["partial_fit_calls"])
        if calls == 9
    ]
    assert search.best_index_ in survivors
    assert search.metadata_ == search.metadata


def test_metadata_after_fit_equals_metadata(data):
    for search in [
        HyperbandSearchCV(sgd(), PARAMS, max_iter=6, aggressiveness=4, random_state=0),
        SuccessiveHalvingSearchCV(sgd(), PARAMS, 5, 1, max_iter=6, random_state=0),
        IncrementalSearchCV(
            sgd(), PARAMS, 3, max_iter=4, fits_per_score=2, random_state=0
        ),
    ]:
        planned = search.metadata
        assert search.fit(*data).metadata_ == planned


def test_hyperband_bracket_zero_samples_what_incremental_search_samples(
    fitted_hyperband,
):
    n_0 = fitted_hyperband.metadata["brackets"][0]["n_models"]
    one = IncrementalSearchCV(sgd(), PARAMS, n_initial_parameters=n_0, random_state=0)
    rows = fitted_hyperband.cv_results_["bracket"] == 0
    sampled = list(fitted_hyperband.cv_results_["params"][rows])
    assert sampled == [m.params for m in one._make_brackets()[0].models]


# -- the fitted search predicts ----------------------------------------------------------------
def test_post_fit_methods_delegate_to_the_best_model(
    fitted_hyperband, data, numpy_data
):
    search, best = fitted_hyperband, fitted_hyperband.best_estimator_
    X, y = data
    Xn, yn = numpy_data
    prediction = search.predict(X)
    assert isinstance(prediction, da.Array)
    np.testing.assert_array_equal(prediction.compute(), best.predict(Xn))
    assert search.score(X, y) == best.score(Xn, yn)
    assert search.score(Xn, yn) == best.score(Xn, yn)
    assert search.scorer_(best, X, y) == best.score(Xn, yn)
    assert hasattr(search, "predict_proba") == hasattr(best, "predict_proba")
    assert not hasattr(search, "transform")
    np.testing.assert_array_equal(
        search.decision_function(Xn), best.decision_function(Xn)
    )


# -- validation data, data frames, batches -----------------------------------------------------
def test_validation_data(data, numpy_data):
    X, y = data
    Xn, yn = numpy_data
    X_val, y_val = (
        da.from_array(Xn[:300], chunks=150),
        da.from_array(yn[:300], chunks=150),
    )
    search = SuccessiveHalvingSearchCV(sgd(), PARAMS, 4, 2, random_state=0)
    search.fit(X, y, validation_data=(X_val, y_val))
    assert search.validation_blocks_ is None
    assert list(search.train_blocks_) == list(range(N_BLOCKS))
    assert search.best_score_ == search.best_estimator_.score(Xn[:300], yn[:300])
    seq = stream(0, n_calls=int(search.best_estimator_.t_ / CHUNK), held_out=False)
    expected = plain_loop(search.best_params_, seq, Xn, yn)
    np.testing.assert_array_equal(search.best_estimator_.coef_, expected.coef_)
    with pytest.raises(ValueError, match="not both"):
        clone(search).set_params(test_size=0.2).fit(
            X, y, validation_data=(X_val, y_val)
        )


def test_dask_dataframe_input(numpy_data):
    dd = pytest.importorskip("dask.dataframe")
    Xn, yn = numpy_data
    X = dd.from_pandas(pd.DataFrame(Xn, columns=list("abcd")), npartitions=6)
    y = dd.from_pandas(pd.Series(yn), npartitions=6)
    search = HyperbandSearchCV(sgd(), PARAMS, max_iter=4, random_state=0).fit(X, y)
    assert len(search.train_blocks_) == 5 and search.train_block_reads_ == 4
    assert search.predict(X).compute().shape == (N,)


def test_batch_size_makes_batches_the_unit_of_max_iter(data, numpy_data):
    Xn, yn = numpy_data
    search = IncrementalSearchCV(
        SGDRegressor(random_state=0),
        {"alpha": [1e-4, 1e-2]},
        n_initial_parameters="grid",
        max_iter=5,
        random_state=0,
        batch_size=150,
    )
    search.fit(data[0], Xn[:, 0] * 2.0)
    assert list(search.cv_results_["partial_fit_calls"]) == [5, 5]
    assert search.best_estimator_.t_ == 1 + 5 * 150


# -- errors before any block is read -----------------------------------------------------------
@pytest.fixture
def no_reads():
    def refuse(*args, **kwargs):
        raise AssertionError("a block was read")

    with dask.config.set(scheduler=refuse):
        yield


@pytest.mark.parametrize(
    "search, error, match",
    [
        (
            IncrementalSearchCV(LinearRegression(), {"fit_intercept": [True]}),
            TypeError,
            "no partial_fit",
        ),
        (IncrementalSearchCV(sgd(), {}), ValueError, "parameters is empty"),
        (
            IncrementalSearchCV(sgd(), {"alpah": [1]}),
            ValueError,
            "not a parameter of SGDClassifier",
        ),
        (
            IncrementalSearchCV(sgd(), PARAMS, max_iter=0),
            ValueError,
            "max_iter < 1 is not supported",
        ),
        (
            HyperbandSearchCV(sgd(), PARAMS, max_iter=0),
            ValueError,
            "max_iter < 1 is not supported",
        ),
        (IncrementalSearchCV(sgd(), PARAMS, patience=1), ValueError, "patience >= 2"),
        (
            IncrementalSearchCV(sgd(), PARAMS, patience=True),
            ValueError,
            "patience >= 2",
        ),
        (
            IncrementalSearchCV(sgd(), PARAMS, patience=2.0),
            ValueError,
            "patience must be an integer",
        ),
        (IncrementalSearchCV(sgd(), PARAMS, max_iter=None), ValueError, "patience"),
        (SuccessiveHalvingSearchCV(sgd(), PARAMS), ValueError, "n_initial_iter"),
        (
            HyperbandSearchCV(sgd(), PARAMS, aggressiveness=1),
            ValueError,
            "aggressiveness",
        ),
        (IncrementalSearchCV(sgd(), PARAMS, test_size=1.5), ValueError, "test_size"),
        (
            IncrementalSearchCV(sgd(), PARAMS, test_size=0.99),
            ValueError,
            "leaving none to train on",
        ),
        (
            IncrementalSearchCV(sgd(), PARAMS, scoring="f1"),
            NotStreamableError,
            "block by block",
        ),
        (
            IncrementalSearchCV(LatentDirichletAllocation(), {"learning_decay": [0.7]}),
            NotStreamableError,
            "block by block",
        ),
        (
            IncrementalSearchCV(sgd(), PARAMS, n_initial_parameters=0),
            ValueError,
            "n_initial_parameters",
        ),
    ],
)
def test_bad_input_fails_before_any_block_is_read(search, error, match, data, no_reads):
    X, y = data
    X = X.map_blocks(_times_one, dtype=X.dtype)
    with pytest.raises(error, match=match):
        search.fit(X, y)


def test_one_block_needs_validation_data(numpy_data):
    Xn, yn = numpy_data
    search = IncrementalSearchCV(sgd(), PARAMS, 2, max_iter=2, random_state=0)
    with pytest.raises(ValueError, match="validation_data"):
        search.fit(Xn, yn)
    search.fit(Xn, yn, validation_data=(Xn[:100], yn[:100]))
    assert list(search.cv_results_["partial_fit_calls"]) == [2, 2]


def test_hyperband_patience(data):
    with pytest.warns(UserWarning, match="The goal of `patience`"):
        assert HyperbandSearchCV(
            sgd(), PARAMS, max_iter=6, aggressiveness=2, patience=2
        ).metadata
    search = HyperbandSearchCV(sgd(), PARAMS, max_iter=9, patience=True, random_state=0)
    params = search.metadata["brackets"][0]["SuccessiveHalvingSearchCV params"]
    assert params["patience"] == 3
    search.fit(*data)
    assert search.metadata_["partial_fit_calls"] <= search.metadata["partial_fit_calls"]


def test_a_failing_candidate_is_named(data):
    search = IncrementalSearchCV(
        sgd(), {"eta0": [0.1, -1.0]}, "grid", max_iter=2, random_state=0
    )
    search.estimator.set_params(learning_rate="constant")
    search.set_params(parameters={"eta0": [0.1]}).fit(*data)
    with pytest.raises(ValueError) as info:
        search.set_params(parameters={"eta0": [0.1, -1.0]}).fit(*data)
    assert "candidate 1 {'eta0': -1.0}" in "\n".join(info.value.__notes__)
    # what the earlier fit left is gone, not mistaken for this one's
    assert not hasattr(search, "cv_results_") and not hasattr(search, "best_estimator_")


def test_a_failing_score_is_named(data):
    search = IncrementalSearchCV(
        sgd(), {"loss": ["hinge"]}, "grid", max_iter=2, scoring="neg_log_loss"
    )
    with pytest.raises(AttributeError) as info:
        search.fit(*data)
    assert "raised while scoring 1 candidates (0)" in "\n".join(info.value.__notes__)


# -- the sklearn face --------------------------------------------------------------------------
def test_a_fitted_search_pickles(fitted_hyperband, numpy_data):
    copy = pickle.loads(pickle.dumps(fitted_hyperband))
    Xn, yn = numpy_data
    assert copy.score(Xn, yn) == fitted_hyperband.score(Xn, yn)
    assert copy.scorer_(copy.best_estimator_, Xn, yn) == copy.score(Xn, yn)
    same_results(copy.cv_results_, fitted_hyperband.cv_results_)


def test_a_supervised_estimator_needs_y(data):
    with pytest.raises(ValueError, match="requires y to be passed"):
        IncrementalSearchCV(sgd(), PARAMS).fit(data[0])


def test_params_are_dask_mls_in_dask_mls_order():
    sha = SuccessiveHalvingSearchCV(sgd(), PARAMS, 10, 5)
    assert (sha.n_initial_parameters, sha.n_initial_iter, sha.max_iter) == (10, 5, None)
    assert set(sha.get_params(deep=False)) == {
        "estimator", "parameters", "n_initial_parameters", "n_initial_iter",
        "max_iter", "aggressiveness", "test_size", "patience", "tol",
        "random_state", "scoring", "verbose", "prefix", "batch_size", "cache",
    }  # fmt: skip
    hyperband = HyperbandSearchCV(sgd(), PARAMS, 9)
    assert (hyperband.max_iter, hyperband.aggressiveness, hyperband.patience) == (
        9,
        3,
        False,
    )
    assert (hyperband.tol, hyperband.test_size) == (1e-3, None)
    assert set(hyperband.get_params(deep=False)) == {
        "estimator", "parameters", "max_iter", "aggressiveness", "patience",
        "tol", "test_size", "random_state", "scoring", "verbose", "prefix",
        "predict_meta", "predict_proba_meta", "transform_meta", "batch_size",
        "cache",
    }  # fmt: skip
    one = IncrementalSearchCV(sgd(), PARAMS)
    assert (one.n_initial_parameters, one.max_iter, one.fits_per_score) == (10, 100, 1)
    assert "estimator__alpha" in one.get_params()
    copy = clone(one.set_params(max_iter=7, estimator__alpha=0.5))
    assert copy.max_iter == 7 and copy.estimator.alpha == 0.5


def test_decay_rate_and_scores_per_fit_are_dask_mls(data):
    with pytest.warns(UserWarning, match="decay_rate is ignored"):
        IncrementalSearchCV(sgd(), PARAMS, 2, decay_rate=1.0, max_iter=1).fit(*data)
    with pytest.warns(UserWarning, match="scores_per_fit"):
        search = IncrementalSearchCV(sgd(), PARAMS, 2, max_iter=3, scores_per_fit=2)
        search.fit(*data)
    assert list(search.cv_results_["partial_fit_calls"]) == [3, 3]


# -- progress, logs, Ctrl-C -------------------------------------------------------------------------
def test_log_records_and_progress_bars(data, caplog, capsys):
    search = HyperbandSearchCV(sgd(), PARAMS, max_iter=3, random_state=0, verbose=True)
    with caplog.at_level(logging.INFO, logger="incremental"):
        search.fit(*data)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("[CV, bracket=1] creating 3 models") for m in messages)
    assert any("[CV] round 1: validation score of" in m for m in messages)
    assert "round 1" in capsys.readouterr().err


def test_silent_without_verbose(data, capsys):
    HyperbandSearchCV(sgd(), PARAMS, max_iter=3, random_state=0).fit(*data)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


class Interrupting(ClassifierMixin, BaseEstimator):
    """An SGDClassifier that presses Ctrl-C once, at its call ``at``."""

    sent = threading.Event()

    def __init__(self, alpha=1e-4, at=2):
        self.alpha = alpha
        self.at = at

    def partial_fit(self, X, y, classes=None):
        if not hasattr(self, "sgd_"):
            self.sgd_, self.calls_ = SGDClassifier(alpha=self.alpha, random_state=0), 0
        self.sgd_.partial_fit(X, y, classes=classes)
        self.classes_ = self.sgd_.classes_
        self.calls_ += 1
        if self.calls_ == self.at and not self.sent.is_set():
            self.sent.set()
            os.kill(os.getpid(), signal.SIGINT)
        return self

    def predict(self, X):
        return self.sgd_.predict(X)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_keeps_the_best_model_so_far(data):
    Interrupting.sent.clear()
    search = IncrementalSearchCV(
        Interrupting(), {"alpha": [1e-4, 1e-2, 1.0]}, "grid", fits_per_score=3,
        max_iter=9, random_state=0,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt) as info:
        search.fit(*data)
    assert "stopped on Ctrl-C" in "\n".join(info.value.__notes__)
    # stopped after the second block: every model scored again at 2 calls
    assert list(search.cv_results_["partial_fit_calls"]) == [2, 2, 2]
    assert search.best_estimator_.calls_ == 2
    held = search.validation_blocks_[0]
    X, y = data
    rows = slice(held * CHUNK, (held + 1) * CHUNK)
    expected = search.best_estimator_.sgd_.score(X[rows].compute(), y[rows].compute())
    assert search.best_score_ == expected
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# -- scikit-learn conventions -------------------------------------------------------
def test_a_search_has_no_partial_fit():
    search = HyperbandSearchCV(SGDClassifier(), {"alpha": [1e-4, 1e-3]}, max_iter=3)
    assert not hasattr(search, "partial_fit")  # its candidates learn in fit


def test_routed_sample_weight_reaches_every_candidate():
    import sklearn
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from incremental import Incremental

    rng = np.random.default_rng(0)
    X = da.from_array(rng.normal(size=(2_000, 3)), chunks=200)
    y = (X[:, 0] > 0).astype(int)
    w = rng.uniform(0.5, 2.0, 2_000)

    def search(estimator):
        return HyperbandSearchCV(
            estimator, {"alpha": [1e-4, 1e-3]}, max_iter=3, random_state=0
        )

    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline(
            [
                (
                    "scale",
                    Incremental(
                        StandardScaler().set_partial_fit_request(sample_weight=False)
                    ),
                ),
                (
                    "search",
                    search(
                        SGDClassifier(random_state=0).set_partial_fit_request(
                            sample_weight=True
                        )
                    ),
                ),
            ]
        ).fit(X, y, sample_weight=w)
    direct = search(SGDClassifier(random_state=0)).fit(
        pipe[0].transform(X), y, sample_weight=w
    )
    unweighted = search(SGDClassifier(random_state=0)).fit(pipe[0].transform(X), y)
    routed = pipe[-1].cv_results_["test_score"]
    np.testing.assert_array_equal(routed, direct.cv_results_["test_score"])
    assert not np.array_equal(routed, unweighted.cv_results_["test_score"])


class ConfigSeen(ClassifierMixin, BaseEstimator):
    """Records scikit-learn's assume_finite wherever it predicts."""

    SEEN: list = []

    def __init__(self, level=0):
        self.level = level

    def partial_fit(self, X, y, classes=None):
        self.classes_ = np.asarray(classes)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        import sklearn

        self.SEEN.append(sklearn.get_config()["assume_finite"])
        return np.full(len(X), self.classes_[0])


def test_validation_runs_in_the_callers_scikit_learn_configuration():
    import sklearn

    X = da.from_array(np.random.default_rng(1).normal(size=(600, 2)), chunks=100)
    y = (X[:, 0] > 0).astype(int)
    ConfigSeen.SEEN.clear()
    with sklearn.config_context(assume_finite=True):
        IncrementalSearchCV(
            ConfigSeen(), {"level": [1]}, n_initial_parameters=1, max_iter=2
        ).fit(X, y)
    assert ConfigSeen.SEEN and all(ConfigSeen.SEEN)
