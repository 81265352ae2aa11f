"""Pipelines of wrappers on dask DataFrames read from parquet and CSV files.

dask's optimiser reads a column of a parquet dataset in fewer, larger
partitions than the frame reports (``df["y"]``: 6 for 40 files). Whatever it
does, a pipeline fitted on ``X, y = df[cols], df["y"]`` must equal, bit for
bit, the same pipeline on the same data as dask arrays with the same row
blocks. The data (``frame_files`` in ``conftest.py``) has 40 files of uneven
lengths, one of them empty.
"""

import dask.array as da
import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from incremental import Incremental, _dask_compat

FEW = ["x0", "x1", "x5"]


def pipeline(**both):
    return make_pipeline(
        Incremental(StandardScaler(), random_state=0, **both),
        Incremental(SGDClassifier(random_state=0), random_state=0, **both),
    )


def state(pipe):
    """The fitted arrays of both stages, and how many blocks each saw."""
    scaler, sgd = pipe[0].estimator_, pipe[1].estimator_
    return {
        "mean_": scaler.mean_,
        "var_": scaler.var_,
        "n_samples_seen_": np.asarray(scaler.n_samples_seen_),
        "coef_": sgd.coef_,
        "intercept_": sgd.intercept_,
        "t_": np.asarray(sgd.t_),
        "blocks": np.array([pipe[0].n_blocks_seen_, pipe[1].n_blocks_seen_]),
    }


def assert_same_bits(got, want):
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), name


def as_arrays(files, columns, sample_weight=False):
    """The files' data as dask arrays with one block per file.

    Each block of X is column-major, as a pandas partition is: StandardScaler
    sums a row-major block in another order, which changes the last bits.
    """
    index = [files.columns.index(c) for c in columns]
    chunks = (files.lengths,)
    X = da.from_array(files.X[:, index], chunks=(files.lengths, len(index)))
    arrays = [X.map_blocks(np.asfortranarray), da.from_array(files.y, chunks=chunks)]
    if sample_weight:
        arrays.append(da.from_array(np.abs(files.X[:, 0]), chunks=chunks))
    return arrays


def test_dask_reads_a_column_of_this_data_in_fewer_partitions(frame_files):
    # The premise of this module: if dask stops fusing files, these tests
    # no longer test what they are named for.
    df = frame_files.read()
    assert df["y"].npartitions == 40
    assert df["y"].optimize().npartitions < 40
    assert df[frame_files.columns].to_dask_array().numblocks[0] < 40


@pytest.mark.parametrize("kind", ["parquet", "csv"])
@pytest.mark.parametrize("columns", ["20 of 21", "3 of 21"])
def test_pipeline_on_files_equals_pipeline_on_arrays(frame_files, kind, columns):
    columns = frame_files.columns if columns == "20 of 21" else FEW
    df = frame_files.read(kind)
    got = state(pipeline().fit(df[columns], df["y"]))
    want = state(pipeline().fit(*as_arrays(frame_files, columns)))
    assert_same_bits(got, want)
    assert got["blocks"].tolist() == [39, 39]  # the empty file is skipped


def test_batch_size_with_a_parquet_x(frame_files):
    df = frame_files.read()
    columns = frame_files.columns
    got = state(pipeline(batch_size=150).fit(df[columns], df["y"]))
    want = state(pipeline(batch_size=150).fit(*as_arrays(frame_files, columns)))
    assert_same_bits(got, want)
    assert got["blocks"][0] == -(-4_000 // 150)


def test_sample_weight_as_a_series_of_the_same_frame(frame_files):
    df = frame_files.read()
    columns = frame_files.columns
    weight = "incremental-2__sample_weight"
    got = pipeline().fit(df[columns], df["y"], **{weight: df["x0"].abs()})
    X, y, w = as_arrays(frame_files, columns, sample_weight=True)
    want = pipeline().fit(X, y, **{weight: w})
    assert_same_bits(state(got), state(want))
    assert not np.array_equal(got[-1].coef_, pipeline().fit(X, y)[-1].coef_)


def test_predict_and_score_of_a_pipeline_fitted_on_parquet(frame_files):
    df = frame_files.read()
    X, y = df[frame_files.columns], df["y"]
    pipe = pipeline().fit(X, y)
    predictions = pipe.predict(X)
    assert predictions.numblocks == (40,)  # one block per file, as X reports
    expected = pipe.predict(frame_files.X)
    np.testing.assert_array_equal(predictions.compute(), expected)
    assert pipe.score(X, y) == np.mean(expected == frame_files.y)


def test_y_as_an_array_of_other_chunks_against_a_parquet_x(frame_files):
    df = frame_files.read()
    columns = frame_files.columns
    y = da.from_array(frame_files.y, chunks=500)
    got = state(pipeline().fit(df[columns], y))
    want = state(pipeline().fit(*as_arrays(frame_files, columns)))
    assert_same_bits(got, want)


def test_an_x_array_made_from_the_frame_by_dask(frame_files):
    # dask makes this array from the optimised frame: 20 blocks, not 40.
    df = frame_files.read()
    X = df[frame_files.columns].to_dask_array()
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    model.fit(X, df["y"])
    assert model.n_blocks_seen_ == X.numblocks[0] < 40
    assert model.score(X, df["y"]) == model.score(frame_files.X, frame_files.y)


def test_pipeline_on_a_dask_that_cannot_turn_tuning_off(frame_files, monkeypatch):
    # The fallback: dask fuses files as it likes; rows must still pair up.
    monkeypatch.setattr(_dask_compat, "FORCE_FALLBACK", True)
    df = frame_files.read()
    columns = frame_files.columns
    weight = np.abs(frame_files.X[:, 1])
    step = "incremental-1__sample_weight"
    pipe = pipeline().fit(df[columns], df["y"], **{step: df["x1"].abs()})
    want = pipeline().fit(
        *as_arrays(frame_files, columns),
        **{step: da.from_array(weight, chunks=(frame_files.lengths,))},
    )
    # Stage 1 reads X and y as the frame reports them; stage 2 the blocks
    # dask chose, so only its row count and its predictions can be compared.
    assert_same_bits(state(pipe), {k: state(want)[k] for k in ["mean_", "var_"]})
    assert pipe[1].history_[0]["n_samples"] == 4_000
    predictions = pipe.predict(df[columns]).compute()
    np.testing.assert_array_equal(predictions, pipe.predict(frame_files.X))
