"""Finding ``classes`` in y: one pass, and missing labels refused before fitting."""

import math

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import SGDClassifier

from incremental import Incremental, _classes
from incremental._classes import find_classes, sorted_unique


@pytest.fixture(autouse=True, params=["grouped", "one task per block"])
def labels_path(request, monkeypatch):
    """Every test runs both ways of finding labels in a dask y: small blocks
    fetched in groups, and large ones (here: all) each in its own task."""
    threshold = math.inf if request.param == "grouped" else 0
    monkeypatch.setattr(_classes, "CLASSES_TASK_BYTES", threshold)
    return request.param


def _labels_with_missing(missing, dtype):
    y = np.arange(500) % 3
    y = y.astype(dtype)
    y[217] = missing  # block 2 of 5 (rows 200:300), its row 17
    return y


@pytest.mark.parametrize("missing,dtype", [(np.nan, float), (None, object)])
def test_missing_label_named_with_its_block_and_row_before_any_fit(
    missing, dtype, recording_sgd
):
    RecordingClassifier, recorded = recording_sgd
    X = da.zeros((500, 2), chunks=100)
    y = da.from_array(_labels_with_missing(missing, dtype), chunks=100)
    model = Incremental(RecordingClassifier(), shuffle_blocks=False)
    with pytest.raises(ValueError, match="y contains NaN or None") as info:
        model.fit(X, y)
    assert "1 in block 2 of 5 (rows 200:300), the first at its row 17" in str(
        info.value
    )
    assert recorded == []  # refused before the first partial_fit
    assert not hasattr(info.value, "__notes__")  # not blamed on a block's fit


def test_missing_label_in_a_series_names_its_partition():
    y = dd.from_pandas(pd.Series(_labels_with_missing(np.nan, float)), npartitions=5)
    with pytest.raises(ValueError, match="in block 2 of 5, the first at its row 17"):
        find_classes(y, SGDClassifier())


def test_missing_label_in_memory():
    with pytest.raises(ValueError, match="y contains NaN or None \\(1 in y, .* 217"):
        find_classes(_labels_with_missing(None, object), SGDClassifier())


def test_classes_are_the_sorted_labels_of_every_block():
    y = da.from_array(np.array(["b", "a", "c", "a"] * 50), chunks=30)
    np.testing.assert_array_equal(find_classes(y, SGDClassifier()), ["a", "b", "c"])


@pytest.mark.parametrize("dtype", ["Int64", "UInt8", "int64[pyarrow]"])
def test_labels_of_pandas_extension_dtypes_give_numeric_classes(dtype):
    # dask turns such a Series into an array of objects, which scikit-learn
    # refuses as labels of an unknown type.
    labels = pd.Series(np.arange(300) % 3).astype(dtype)
    frame = dd.from_pandas(pd.DataFrame({"a": np.arange(300.0)}), npartitions=3)
    y = dd.from_pandas(labels, npartitions=2)  # other partitions than X's
    classes = find_classes(y, SGDClassifier())
    assert classes.dtype.kind in "iu" and classes.tolist() == [0, 1, 2]
    model = Incremental(SGDClassifier(random_state=0), shuffle_blocks=False)
    plain = model.fit(frame, y.astype("int64"))
    np.testing.assert_array_equal(model.fit(frame, y).coef_, plain.coef_)
    assert model.classes_.tolist() == [0, 1, 2]


def test_a_missing_label_of_an_extension_dtype_is_named():
    labels = pd.Series(np.arange(300) % 3, dtype="Int64")
    labels[150] = pd.NA
    y = dd.from_pandas(labels, npartitions=2)
    with pytest.raises(ValueError, match="1 in block 1 of 2, the first at its row 0"):
        find_classes(y, SGDClassifier())


def test_an_empty_y_says_there_is_nothing_to_fit():
    X, y = da.zeros((0, 4), chunks=100), da.zeros(0, chunks=100, dtype=int)
    with pytest.raises(ValueError, match="0 sample.*every block of y is empty"):
        Incremental(SGDClassifier()).fit(X, y)


def test_classes_of_many_blocks_some_empty_and_a_2d_y():
    labels = np.array([[5, 0], [7, 1], [5, 2], [9, 1]] * 30)
    y = da.from_array(labels, chunks=((0, 40, 0, 50, 30), 2))
    model = SGDClassifier()
    np.testing.assert_array_equal(find_classes(y[:, 0], model), [5, 7, 9])
    # a 2-D y of integers is a multilabel indicator: one class per column
    np.testing.assert_array_equal(find_classes(y, model), [0, 1])


@given(
    hnp.arrays(
        st.sampled_from(["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]),
        st.integers(0, 300),
        elements=None,
    )
)
def test_sorted_unique_is_numpys_unique(values):
    expected = np.unique(values)
    found = sorted_unique(values)
    assert found.dtype == expected.dtype
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("dtype", ["i1", "i8", "u8"])
def test_sorted_unique_at_the_ends_of_each_integer_type(dtype):
    info = np.iinfo(dtype)
    for values in (
        [info.min, info.min + 3, info.min],  # narrow: counted
        [info.max, info.max - 2],
        [info.min, info.max, 0],  # the whole range: sorted
    ):
        values = np.array(values, dtype=dtype)
        np.testing.assert_array_equal(sorted_unique(values), np.unique(values))
