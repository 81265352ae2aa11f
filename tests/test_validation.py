"""Validation data: checked before any block is fitted; early stopping."""

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import SGDClassifier

from incremental import Incremental
from incremental._validation import check_validation_data


class RecordingClassifier(SGDClassifier):
    calls: list = []

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        RecordingClassifier.calls.append(len(X))
        return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    Xn = rng.normal(size=(400, 4))
    yn = (Xn[:, 0] > 0).astype(int)
    RecordingClassifier.calls = []
    return da.from_array(Xn, chunks=100), da.from_array(yn, chunks=100)


def _early(**params):
    return Incremental(RecordingClassifier(), early_stopping=True, **params)


@pytest.mark.parametrize(
    "given,named",
    [
        ("X_val", "dask.Array"),
        ("triple", "tuple"),
        ("dict", "dict"),
    ],
)
def test_validation_data_that_is_not_a_pair_is_named(data, given, named):
    X, y = data
    validation_data = {"X_val": X, "triple": (X, y, y), "dict": {"X": X}}[given]
    with pytest.raises(ValueError, match="must be a pair \\(X_val, y_val\\), got"):
        _early().fit(X, y, validation_data=validation_data)
    assert RecordingClassifier.calls == []


@pytest.mark.parametrize("kind", ["dask array", "numpy", "dask frame"])
def test_validation_data_with_other_features_is_refused_before_any_block(data, kind):
    X, y = data
    X_val = {
        "dask array": X[:50, :3],
        "numpy": np.zeros((50, 5)),
        "dask frame": dd.from_pandas(pd.DataFrame(np.zeros((50, 3))), npartitions=2),
    }[kind]
    with pytest.raises(ValueError, match="X_val has [35] features but X has 4"):
        _early().fit(X, y, validation_data=(X_val, y[:50]))
    assert RecordingClassifier.calls == []


def test_frames_are_compared_by_their_columns():
    frame = dd.from_pandas(pd.DataFrame(np.zeros((10, 4))), npartitions=2)
    X_val, y_val = check_validation_data((frame, np.zeros(10)), np.zeros((5, 4)))
    assert X_val is frame
    with pytest.raises(ValueError, match="X_val has 4 features but X has 2"):
        check_validation_data((frame, np.zeros(10)), frame[[0, 1]])


def test_validation_labels_of_another_length_are_refused_before_any_block(data):
    X, y = data
    with pytest.raises(ValueError, match="X_val has 100 rows but y_val has 90"):
        _early().fit(X, y, validation_data=(X[:100], y[:90]))
    assert RecordingClassifier.calls == []


def test_validation_data_of_unknown_lengths_is_named_in_the_error(data):
    X, y = data
    frame = dd.from_pandas(pd.DataFrame(np.zeros((100, 4))), npartitions=1)
    y_val = dd.from_pandas(pd.Series(np.zeros(97, dtype=int)), npartitions=2)
    with pytest.raises(ValueError, match="X has 100 rows but y has 97") as info:
        _early().fit(X, y, validation_data=(frame, y_val))
    assert "validation_data's X_val, y_val" in info.value.__notes__[-1]
    assert RecordingClassifier.calls == []
