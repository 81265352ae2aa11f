import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.linear_model import SGDClassifier

from incremental import Incremental, IndexMismatchWarning, _blocks
from incremental._blocks import make_blocks


def _all(blocks):
    return blocks.compute(range(blocks.n_blocks))


def _concat(parts, name):
    values = [p[name] for p in parts]
    if sp.issparse(values[0]):
        return sp.vstack(values).toarray()
    if hasattr(values[0], "iloc"):
        return pd.concat(values).to_numpy()
    return np.concatenate(values)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(103, 4)), rng.integers(0, 3, size=103)


def test_columns_are_rechunked_to_whole_rows_and_y_follows_x(data):
    Xn, yn = data
    X = da.from_array(Xn, chunks=(20, 2))
    y = da.from_array(yn, chunks=33)
    blocks = make_blocks(X, y)
    parts = _all(blocks)
    assert blocks.n_blocks == 6
    assert [p["X"].shape for p in parts] == [(20, 4)] * 5 + [(3, 4)]
    assert [len(p["y"]) for p in parts] == [20] * 5 + [3]
    np.testing.assert_array_equal(_concat(parts, "X"), Xn)
    np.testing.assert_array_equal(_concat(parts, "y"), yn)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "list", "dask-series"])
def test_in_memory_and_other_y_are_cut_along_x(data, kind):
    Xn, yn = data
    y = {
        "numpy": yn,
        "pandas": pd.Series(yn),
        "list": yn.tolist(),
        "dask-series": dd.from_pandas(pd.Series(yn), npartitions=2),
    }[kind]
    X = da.from_array(Xn, chunks=25)
    parts = _all(make_blocks(X, y, sample_weight=np.arange(103.0)))
    assert [len(p["y"]) for p in parts] == [25, 25, 25, 25, 3]
    np.testing.assert_array_equal(
        np.concatenate([np.asarray(p["y"]) for p in parts]), yn
    )
    np.testing.assert_array_equal(_concat(parts, "sample_weight"), np.arange(103.0))


def test_dataframes_with_unknown_lengths_pair_partitions(data):
    Xn, yn = data
    frame = pd.DataFrame(Xn, columns=list("abcd")).assign(t=yn)
    ddf = dd.from_pandas(frame, npartitions=4).clear_divisions()
    parts = _all(make_blocks(ddf[list("abcd")], ddf["t"]))
    assert len(parts) == 4
    np.testing.assert_array_equal(_concat(parts, "X"), Xn)
    np.testing.assert_array_equal(_concat(parts, "y"), yn)
    assert list(parts[0]["X"].columns) == list("abcd")


def test_dask_array_y_against_dataframe_x_of_other_partitioning(data):
    Xn, yn = data
    X = dd.from_pandas(pd.DataFrame(Xn), npartitions=3)
    y = da.from_array(yn, chunks=50)
    parts = _all(make_blocks(X, y))
    np.testing.assert_array_equal(_concat(parts, "y"), yn)
    assert [len(p["X"]) for p in parts] == [len(p["y"]) for p in parts]


def test_sparse_blocks(data):
    Xn, yn = data
    X = da.from_array(Xn, chunks=(30, 2)).map_blocks(sp.csr_matrix)
    parts = _all(make_blocks(X, yn))
    assert all(sp.issparse(p["X"]) for p in parts)
    np.testing.assert_array_equal(_concat(parts, "X"), Xn)


def test_in_memory_input_is_one_block(data):
    Xn, yn = data
    blocks = make_blocks(Xn, yn)
    assert blocks.n_blocks == 1
    (part,) = _all(blocks)
    assert part["X"] is Xn and part["y"] is yn


@pytest.mark.parametrize("n_y", [102, 104])
def test_length_mismatch_is_named(data, n_y):
    Xn, _ = data
    with pytest.raises(ValueError, match=f"X has 103 rows but y has {n_y}"):
        make_blocks(da.from_array(Xn, chunks=25), np.zeros(n_y))
    with pytest.raises(ValueError, match=f"X has 103 rows but y has {n_y}"):
        make_blocks(da.from_array(Xn, chunks=25), da.zeros(n_y, chunks=10))
    with pytest.raises(ValueError, match=f"X has 103 rows but y has {n_y}"):
        make_blocks(Xn, np.zeros(n_y))


def test_y_derived_from_x_is_computed_with_it():
    # One optimised graph: y's tasks can use X's, and a group is one call.
    X = da.random.default_rng(1).normal(size=(100, 3), chunks=10)
    y = X[:, 0] > 0
    blocks = make_blocks(X, y)
    for part in _all(blocks):
        np.testing.assert_array_equal(part["y"], part["X"][:, 0] > 0)


def test_describe_names_rows(data):
    Xn, _ = data
    blocks = make_blocks(da.from_array(Xn, chunks=25))
    assert blocks.describe(1) == "block 1 of 5 (rows 25:50)"


class RecordingArray:
    """An array-like stored elsewhere (as h5py or netCDF are): records reads."""

    def __init__(self, values):
        self.values = values
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim
        self.reads = []

    def __getitem__(self, index):
        self.reads.append(index)
        return self.values[index]


def _uses_dask_fused_tasks(graph):
    from dask._task_spec import Task, _execute_subgraph

    return any(
        isinstance(node, Task) and node.func is _execute_subgraph
        for node in graph.values()
    )


def test_chains_of_small_tasks_are_not_fused():
    # A fused chain orders its own small graph on every run (about 100 us a
    # block); our scheduler calls are a few blocks each, so fusing saves nothing.
    Xn = np.arange(120.0).reshape(20, 6)
    blocks = make_blocks(da.from_array(Xn, chunks=5) * 2.0)
    assert not _uses_dask_fused_tasks(blocks.graph)
    np.testing.assert_array_equal(blocks.compute([2])[0]["X"], Xn[10:15] * 2.0)
    with dask.config.set({"optimization.fuse.active": True}):  # the user's choice
        assert _uses_dask_fused_tasks(
            make_blocks(da.from_array(Xn, chunks=5) * 2.0).graph
        )


def test_slices_of_stored_data_are_still_merged_into_one_read():
    stored = RecordingArray(np.arange(120.0).reshape(20, 6))
    X = da.from_array(stored, chunks=(5, 6))[:, :2]
    (block,) = make_blocks(X).compute([1])
    np.testing.assert_array_equal(block["X"], stored.values[5:10, :2])
    # one read of only the two columns, not of the whole block then sliced
    assert stored.reads[-1] == (slice(5, 10), slice(0, 2))


def test_a_graph_with_other_blocks_than_x_is_a_clear_error(data, monkeypatch):
    Xn, yn = data
    optimized = _blocks._optimized_graph

    def drop_last_block_of_y(collections):
        graph, keys = optimized(collections)
        return graph, [keys[0], keys[1][:-1]]

    monkeypatch.setattr(_blocks, "_optimized_graph", drop_last_block_of_y)
    with pytest.raises(RuntimeError, match="graph of y .* has 4 blocks where X has 5"):
        make_blocks(da.from_array(Xn, chunks=25), da.from_array(yn, chunks=25))


def test_a_persisted_column_selection_that_lost_blocks_is_named(frame_files):
    df = frame_files.read()
    X = df[frame_files.columns].persist()  # dask/dask#12488 loses blocks here
    try:
        X.compute()
    except Exception:
        pass
    else:
        pytest.skip("this dask persists column selections whole")
    with pytest.raises(RuntimeError, match="graph of X has no task for its block"):
        make_blocks(X, df["y"])


def test_pandas_blocks_of_other_indexes_are_paired_by_position_with_a_warning():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=[10, 11, 12])
    same = {"X": X, "y": pd.Series([0, 1, 0], index=[10, 11, 12])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _blocks.check_block_rows(same, "block 0")
        _blocks.check_block_rows({"X": X, "y": np.array([0, 1, 0])}, "block 0")
    other = {"X": X, "y": pd.Series([0, 1, 0], index=[12, 11, 10])}
    with pytest.warns(IndexMismatchWarning, match="paired by position"):
        _blocks.check_block_rows(other, "block 0")


def test_a_y_read_apart_from_x_in_another_order_is_warned_about(frame_files):
    df = frame_files.read()
    reversed_y = df["y"].compute()[::-1]  # the labels of other rows
    with pytest.warns(IndexMismatchWarning):
        Incremental(SGDClassifier()).fit(df[frame_files.columns], reversed_y)
