"""Validation data: checked before any block is fitted; early stopping."""

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from incremental import Incremental
from incremental._validation import check_validation_data


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(400, 4))
    yn = (Xn[:, 0] > 0).astype(int)
    return da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)


@pytest.fixture
def early(recording_sgd):
    """An early-stopping Incremental, and the rows of each partial_fit call."""
    RecordingClassifier, calls = recording_sgd
    return Incremental(RecordingClassifier(), early_stopping=True), calls


@pytest.mark.parametrize(
    "given,named",
    [
        ("X_val", "dask.Array"),
        ("triple", "builtins.tuple"),
        ("dict", "builtins.dict"),
    ],
)
def test_validation_data_that_is_not_a_pair_is_named(data, early, given, named):
    X, y = data
    validation_data = {"X_val": X, "triple": (X, y, y), "dict": {"X": X}}[given]
    with pytest.raises(
        ValueError, match=f"must be a pair \\(X_val, y_val\\), got {named}"
    ):
        early[0].fit(X, y, validation_data=validation_data)
    assert early[1] == []


@pytest.mark.parametrize("kind", ["dask array", "numpy", "dask frame"])
def test_validation_data_with_other_features_is_refused_before_any_block(
    data, early, kind
):
    X, y = data
    X_val = {
        "dask array": X[:50, :3],
        "numpy": np.zeros((50, 5)),
        "dask frame": dd.from_pandas(pd.DataFrame(np.zeros((50, 3))), npartitions=2),
    }[kind]
    with pytest.raises(ValueError, match="X_val has [35] features but X has 4"):
        early[0].fit(X, y, validation_data=(X_val, y[:50]))
    assert early[1] == []


def test_frames_are_compared_by_their_columns():
    frame = dd.from_pandas(pd.DataFrame(np.zeros((10, 4))), npartitions=2)
    X_val, y_val = check_validation_data((frame, np.zeros(10)), np.zeros((5, 4)))
    assert X_val is frame
    with pytest.raises(ValueError, match="X_val has 4 features but X has 2"):
        check_validation_data((frame, np.zeros(10)), frame[[0, 1]])


def test_validation_labels_of_another_length_are_refused_before_any_block(data, early):
    X, y = data
    with pytest.raises(ValueError, match="X_val has 100 rows but y_val has 90"):
        early[0].fit(X, y, validation_data=(X[:100], y[:90]))
    assert early[1] == []


def test_validation_data_of_unknown_lengths_is_named_in_the_error(data, early):
    X, y = data
    frame = dd.from_pandas(pd.DataFrame(np.zeros((100, 4))), npartitions=1)
    y_val = dd.from_pandas(pd.Series(np.zeros(97, dtype=int)), npartitions=2)
    with pytest.raises(ValueError, match="X has 100 rows but y has 97") as info:
        early[0].fit(X, y, validation_data=(frame, y_val))
    assert "validation_data's X_val, y_val" in info.value.__notes__[-1]
    assert early[1] == []
