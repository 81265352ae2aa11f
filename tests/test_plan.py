"""The fit plan is pure: tested without dask computing anything."""

import math

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.multioutput import MultiOutputClassifier
from sklearn.utils import check_random_state

from incremental._plan import (
    classes_source,
    epoch_orders,
    hold_out,
    is_per_sample,
    make_plan,
    plan_batches,
    prefetch_and_group,
    split_fit_params,
)


@pytest.fixture(autouse=True)
def no_scheduler_calls():
    """The plan never computes: any scheduler call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the plan called a dask scheduler")

    with dask.config.set(scheduler=refuse):
        yield


def test_per_sample_rules():
    assert is_per_sample("sample_weight", np.ones(10), 10)
    assert not is_per_sample("classes", np.arange(10), 10)
    assert not is_per_sample("alpha", 0.5, 10)
    assert not is_per_sample("labels", np.ones(3), 10)
    assert is_per_sample("w", da.ones(10, chunks=5), 10)
    assert is_per_sample("w", np.ones(7), float("nan"))
    # sample_weight is per-sample whatever its length: a wrong one is an error
    assert is_per_sample("sample_weight", np.ones(3), 10)
    # ... but a scalar weight is one weight for every row
    assert not is_per_sample("sample_weight", 2.0, 10)
    assert not is_per_sample("sample_weight", np.float64(2.0), 10)


@pytest.mark.parametrize("length", [100, 450, 501])
def test_sample_weight_of_the_wrong_length_is_refused(length):
    with pytest.raises(ValueError) as info:
        split_fit_params({"sample_weight": np.ones(length)}, 500)
    message = str(info.value)
    assert f"sample_weight has {length} entries but X has 500 rows" in message


def test_split_keeps_constant_params_whole():
    per_sample, constant = split_fit_params(
        {"sample_weight": np.ones(5), "classes": [0, 1], "check_input": False}, 5
    )
    assert list(per_sample) == ["sample_weight"]
    assert constant == {"classes": [0, 1], "check_input": False}
    # rows of X unknown (a dask DataFrame): checked when cut into blocks
    per_sample, _ = split_fit_params({"sample_weight": np.ones(3)}, math.nan)
    assert list(per_sample) == ["sample_weight"]


def test_classes_source():
    sgd = SGDClassifier()
    assert classes_source(sgd, True, {}, first_call=True) == "y"
    assert classes_source(sgd, True, {}, first_call=False) is None
    assert classes_source(sgd, True, {"classes": [0, 1]}, first_call=True) is None
    assert classes_source(sgd, False, {}, first_call=True) is None
    assert classes_source(SGDRegressor(), True, {}, first_call=True) is None
    fitted = SGDClassifier().partial_fit([[0.0], [1.0]], [0, 1], classes=[0, 1])
    assert classes_source(fitted, True, {}, first_call=False) == "fitted"
    # a meta-estimator forwarding **kwargs to an estimator that takes classes
    meta = MultiOutputClassifier(SGDClassifier())
    assert classes_source(meta, True, {}, first_call=True) == "y"


def test_hold_out_and_epochs_follow_one_documented_sequence():
    plan = make_plan(10, check_random_state(3), max_epochs=3, hold_out_fraction=0.2)
    rng = check_random_state(3)
    held = np.sort(rng.permutation(10)[:2])
    train = np.setdiff1d(np.arange(10), held)
    np.testing.assert_array_equal(plan.held_out, held)
    np.testing.assert_array_equal(plan.train, train)
    for order in plan.orders:
        np.testing.assert_array_equal(order, rng.permutation(train))


def test_hold_out_must_leave_blocks_to_train_on():
    with pytest.raises(ValueError, match="leaving none to train on"):
        hold_out(2, 0.9, check_random_state(0))


def test_unshuffled_epochs_are_storage_order():
    orders = epoch_orders(np.array([0, 2, 3]), 2, False, check_random_state(0))
    assert [o.tolist() for o in orders] == [[0, 2, 3], [0, 2, 3]]


@given(
    rows=st.lists(st.integers(0, 50), min_size=1, max_size=12),
    batch_size=st.integers(1, 60),
    seed=st.integers(0, 2**16),
)
def test_batches_cover_every_row_once_in_visiting_order(rows, batch_size, seed):
    order = check_random_state(seed).permutation(len(rows))
    batches = plan_batches(order, rows, batch_size)
    visited = [(b, r) for b in order for r in range(rows[b])]
    cut = [
        (b, r) for batch in batches for b, s in batch for r in range(s.start, s.stop)
    ]
    assert cut == visited
    sizes = [sum(s.stop - s.start for _, s in batch) for batch in batches]
    assert all(size == batch_size for size in sizes[:-1])
    assert not sizes or 0 < sizes[-1] <= batch_size


def test_batches_without_batch_size_are_the_blocks():
    assert plan_batches([2, 0], None, None) == [[(2, None)], [(0, None)]]
    with pytest.raises(ValueError, match="row counts"):
        plan_batches([0], None, 10)


@pytest.mark.parametrize(
    "prefetch, block_bytes, batch_bytes, expected",
    [
        ("auto", 32_000, None, (64, 32)),  # small blocks: many per call
        ("auto", 40e6, None, (13, 1)),  # 40 MB blocks: one per call, 13 held
        (6, 40e6, None, (6, 1)),  # a given prefetch keeps large blocks apart
        (6, 32_000, None, (6, 3)),
        ("auto", 40e6, 32_000, (64, 32)),  # small batches of large blocks
        ("auto", math.nan, None, (4, 2)),  # size unknown (a DataFrame)
    ],
)
def test_prefetch_and_group_follow_the_size(
    prefetch, block_bytes, batch_bytes, expected
):
    assert prefetch_and_group(prefetch, block_bytes, batch_bytes) == expected


@given(
    block_bytes=st.floats(1e3, 2e9),
    cores=st.integers(1, 256),
    prefetch=st.one_of(st.just("auto"), st.integers(1, 100)),
)
def test_auto_prefetch_holds_one_call_more_than_the_cores(block_bytes, cores, prefetch):
    ahead, group = prefetch_and_group(prefetch, block_bytes, cores=cores)
    unbounded, same_group = prefetch_and_group(prefetch, block_bytes)
    assert group == same_group  # the cores bound what is held, not the calls
    if prefetch != "auto":
        assert ahead == prefetch  # a number is what the user asked for
        return
    # never more than the memory bound, never more than the cores can use
    assert ahead <= unbounded
    assert ahead <= max(2, group * (cores + 1))
    # and enough to keep every core busy, within the memory bound
    assert ahead >= min(unbounded, group * (cores + 1))


def test_epoch_orders_are_drawn_as_the_fit_reaches_them():
    # A huge max_epochs (stopped early) must not draw every order up front.
    plan = make_plan(5, check_random_state(1), max_epochs=10**12)
    assert plan.n_epochs == 10**12
    rng = check_random_state(1)
    for epoch in range(3):
        np.testing.assert_array_equal(plan.orders[epoch], rng.permutation(5))
    assert len(plan.orders._drawn) == 3
    np.testing.assert_array_equal(plan.orders[1], plan.orders[-(10**12) + 1])
    with pytest.raises(IndexError):
        plan.orders[10**12]
