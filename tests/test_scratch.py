"""Scratch buffers: reused while a block stream runs, never held after it."""

import threading

import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.linear_model import SGDRegressor

from incremental import Incremental, _scratch
from incremental._stream import BlockStream


@pytest.fixture
def allocations(monkeypatch):
    """The sizes of the buffers ``_scratch`` allocates, as it allocates them."""
    made = []
    fresh = _scratch._fresh

    def counted(nbytes):
        made.append(nbytes)
        return fresh(nbytes)

    monkeypatch.setattr(_scratch, "_fresh", counted)
    return made


def test_outside_a_stream_every_buffer_is_fresh_and_none_is_kept(allocations):
    for _ in range(3):
        with _scratch.scratch(100) as buffer:
            assert buffer.size == 100 and buffer.dtype == np.uint8
    assert allocations == [100, 100, 100]
    assert _scratch.kept() == 0


def test_a_stream_reuses_its_buffers_and_drops_them_when_the_last_ends(allocations):
    with _scratch.reusing():
        with _scratch.reusing():  # a second stream at the same time
            with _scratch.scratch(1000) as first:
                first[:] = 1
            with _scratch.scratch(990) as second:
                assert second.size == 990 and np.shares_memory(first, second)
        assert _scratch.kept() == 1  # the first stream still runs
        with _scratch.scratch(2000):  # larger than any kept: a new one
            pass
        assert _scratch.kept() == 1  # it replaced the smaller one
    assert _scratch.kept() == 0
    assert allocations == [1000 + 1000 // 16, 2000 + 2000 // 16]


def test_buffers_in_use_at_once_are_never_shared(allocations):
    held, barrier = [], threading.Barrier(4)

    def read():
        for _ in range(5):
            with _scratch.scratch(64) as buffer:
                held.append(buffer)
                barrier.wait()  # all four hold one here
                barrier.wait()

    with _scratch.reusing():
        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert _scratch.kept() == 4
    for turn in range(5):
        at_once = held[4 * turn : 4 * turn + 4]
        assert not any(
            np.shares_memory(a, b) for i, a in enumerate(at_once) for b in at_once[:i]
        )
    assert len(allocations) == 4  # one per read at a time, not one per read


def test_a_stream_keeps_buffers_while_it_runs_and_none_after():
    seen = []

    def compute(indices):
        with _scratch.scratch(10):
            pass
        seen.append(_scratch.kept())
        return list(indices)

    stream = BlockStream(compute, range(6), prefetch=2, overlap=True, readers=2)
    assert [index for index, _ in stream] == list(range(6))
    assert max(seen) >= 1
    assert _scratch.kept() == 0
    # A stream its consumer leaves early lets go of them too.
    stream = iter(BlockStream(compute, range(6), overlap=False))
    next(stream)
    assert _scratch.kept() == 1
    stream.close()
    assert _scratch.kept() == 0


def test_a_fit_over_compressed_zarr_reads_into_a_few_buffers(tmp_path, allocations):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 5))
    y = X @ np.arange(5.0)
    z = zarr.create_array(
        str(tmp_path / "X.zarr"), shape=X.shape, chunks=(250, 5), dtype="f8"
    )
    z[:] = X
    lazy = da.from_zarr(z)

    class Spy(SGDRegressor):
        def partial_fit(self, X, y, **kwargs):
            kept.append(_scratch.kept())
            return super().partial_fit(X, y, **kwargs)

    kept = []
    model = Incremental(Spy(random_state=0), shuffle_blocks=False)
    model.fit(lazy, y)
    # 16 chunks were read, each through a scratch buffer for its stored
    # bytes; a few buffers served them all and none is held after the fit.
    assert len(kept) == 16
    assert 1 <= len(allocations) <= 4
    assert _scratch.kept() == 0
    plain = SGDRegressor(random_state=0)
    for start in range(0, 4000, 250):
        plain.partial_fit(X[start : start + 250], y[start : start + 250])
    np.testing.assert_array_equal(model.estimator_.coef_, plain.coef_)
