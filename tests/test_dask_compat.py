"""Every use of dask internals has a public fallback that gives the same result.

Each test runs once on dask's internals and once with
``_dask_compat.FORCE_FALLBACK`` set, as if a dask release had moved them.
"""

import io

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.callbacks import Callback
from dask.diagnostics import ProgressBar
from sklearn.linear_model import SGDClassifier
from sklearn.preprocessing import FunctionTransformer

from incremental import Incremental, _dask_compat
from incremental._apply import apply_blockwise
from incremental._blocks import compute_row_chunks, make_blocks

N, CHUNK = 600, 100


@pytest.fixture(params=[False, True], ids=["internals", "fallback"])
def fallback(request, monkeypatch):
    monkeypatch.setattr(_dask_compat, "FORCE_FALLBACK", request.param)
    return request.param


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    Xn = rng.normal(size=(N, 4))
    yn = (Xn[:, 0] > 0).astype(int)
    return Xn, yn


def plain(Xn, yn, rows=CHUNK):
    model = SGDClassifier(random_state=0)
    for start in range(0, len(Xn), rows):
        model.partial_fit(
            Xn[start : start + rows], yn[start : start + rows], classes=[0, 1]
        )
    return model


def fit(X, y):
    return Incremental(SGDClassifier(random_state=0), shuffle_blocks=False).fit(X, y)


@pytest.mark.parametrize(
    "make_x",
    [
        lambda Xn: da.from_array(Xn, chunks=CHUNK),  # blocks held as data
        lambda Xn: da.from_array(Xn, chunks=CHUNK) * 1.0,  # a chain of tasks
        lambda Xn: da.from_array(np.vstack([Xn, Xn]), chunks=CHUNK)[
            :N
        ],  # slices of stored data
    ],
    ids=["data", "tasks", "slices"],
)
def test_arrays_fit_the_same(fallback, data, make_x):
    Xn, yn = data
    model = fit(make_x(Xn), da.from_array(yn, chunks=CHUNK))
    np.testing.assert_array_equal(model.coef_, plain(Xn, yn).coef_)


def test_dataframes_fit_the_same(fallback, data):
    Xn, yn = data
    frame = pd.DataFrame(Xn, columns=list("abcd")).assign(t=yn)
    ddf = dd.from_pandas(frame, npartitions=6)
    model = fit(ddf[list("abcd")], ddf["t"])
    np.testing.assert_array_equal(model.coef_, plain(frame[list("abcd")], yn).coef_)


def test_blocks_held_as_data_are_found_only_with_internals(fallback, data):
    Xn, yn = data
    X = da.from_array(Xn, chunks=CHUNK)
    (key,) = [k for k in X.__dask_graph__() if k[1] == 0]
    found = _dask_compat.graph_data(X.__dask_graph__()[key])
    assert (found is None) == fallback
    if not fallback:
        np.testing.assert_array_equal(found, Xn[:CHUNK])


def test_progress_bars_without_internals_still_work(fallback, data):
    Xn, yn = data
    out = io.StringIO()
    with ProgressBar(out=out):
        fit(da.from_array(Xn, chunks=CHUNK) * 2.0, da.from_array(yn, chunks=CHUNK))
    bars = out.getvalue().count("100% Completed")
    # one bar per epoch with the internals; one per scheduler call without
    assert bars == 1 if not fallback else bars >= 1
    assert Callback.active == set()


def test_slices_to_merge_falls_back_to_letting_dask_fuse(fallback):
    stored = da.from_array(np.zeros((100, 2)), chunks=50)
    graph = dict(stored[10:][:5].__dask_graph__())
    assert _dask_compat.slices_to_merge(graph) or not fallback


def test_lowered_graph_gives_the_keys_of_every_block(fallback):
    X = da.ones((10, 2), chunks=(3, 2)) + 1
    graph, keys = _dask_compat.lowered_graph([X], optimize=True)
    assert len(keys) == 1 and len(keys[0]) == 4
    values = dask.get(graph, keys[0])
    assert [v.shape[0] for v in values] == [3, 3, 3, 1]


def test_reported_partitions_turns_tuning_off_or_says_it_cannot(fallback):
    before = dask.config.get(_dask_compat.TUNE_KEY)
    with _dask_compat.reported_partitions() as off:
        assert off is not fallback
        assert dask.config.get(_dask_compat.TUNE_KEY) is (fallback and before)
    assert dask.config.get(_dask_compat.TUNE_KEY) == before


def _paired(blocks):
    """Every row of every block has its own label (y = x0 + x1 > 0) and weight."""
    for part in blocks.compute(range(blocks.n_blocks)):
        X = np.asarray(part["X"])
        assert len(X) == len(part["y"]) == len(part["sample_weight"])
        np.testing.assert_array_equal(np.asarray(part["y"]), X[:, 0] + X[:, 1] > 0)
        np.testing.assert_array_equal(np.asarray(part["sample_weight"]), X[:, 1])
    return blocks.n_blocks


@pytest.mark.parametrize(
    "case",
    [
        "frame X, Series y",
        "X made by dask from the frame",
        "X a transform of the frame",
        "y an array of other chunks",
        "y repartitioned",
    ],
)
@pytest.mark.parametrize("columns", [20, 2])
def test_parquet_columns_pair_row_by_row_whatever_dask_fuses(
    fallback, frame_files, case, columns
):
    df = frame_files.read()
    X, y = df[frame_files.columns[:columns]], df["y"]
    if case == "X made by dask from the frame":
        X = X.to_dask_array()
    elif case == "X a transform of the frame":
        identity = FunctionTransformer().fit(frame_files.X[:, :columns])
        X = apply_blockwise(identity, "transform", X)
    elif case == "y an array of other chunks":
        y = da.from_array(frame_files.y, chunks=700)
    elif case == "y repartitioned":
        y = y.repartition(npartitions=7)
    blocks = make_blocks(X, y, sample_weight=df["x1"])
    n_blocks = _paired(blocks)
    if case != "X made by dask from the frame" and not fallback:
        assert n_blocks == 40  # the partitions the frame reports
    lengths = compute_row_chunks(X)
    assert sum(lengths) == 4_000 and len(lengths) == n_blocks
    if not isinstance(X, da.Array):  # a frame's, whatever dask would fuse
        assert lengths == frame_files.lengths


def _slow_block(block):
    import time

    time.sleep(0.01)  # long enough for the stream's readers to overlap
    return block


def test_a_profiler_survives_a_fit_whose_readers_overlap(data):
    from dask.diagnostics import Profiler
    from dask.utils import key_split

    Xn, yn = data
    X = da.from_array(Xn, chunks=20).map_blocks(_slow_block, dtype=float)
    # Groups of two blocks, two reader threads computing groups at once.
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False, prefetch=4)
    with Profiler() as profiler:
        model.fit(X, yn, classes=[0, 1])
        assert any(entry[0] == profiler._start for entry in Callback.active)
        (X + 1).sum().compute()  # still seen after the fit
    seen = [key_split(r.key) for r in profiler.results]
    assert seen.count("slow_block") == N // 20  # every block the fit made, once
    assert "sum" in seen


def test_callbacks_given_fall_back_to_get_as_it_is(fallback):
    given = _dask_compat.with_callbacks_given(dask.threaded.get)
    assert (given is dask.threaded.get) == fallback
    own = lambda dsk, keys: None  # noqa: E731 - a user's scheduler: left alone
    assert _dask_compat.with_callbacks_given(own) is own
