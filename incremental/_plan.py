"""The fit plan: every decision about a fit that needs no computing.

From the wrapper's parameters, the number and sizes of the blocks and the fit
parameters, the plan says which fit parameters are cut into blocks and which
pass unchanged, how ``classes`` reaches ``partial_fit``, which blocks are held
out for validation, the order of each epoch, how each epoch is cut into
batches, and how many blocks are computed ahead. Everything here is a pure
function of its arguments: no scheduler, no threads, no estimator calls, no
clock, so it is tested without dask computing anything.

Random draws follow one documented sequence from
``rng = sklearn.utils.check_random_state(random_state)``: first the held-out
blocks (``rng.permutation(n_blocks)[:n_held]``, when early stopping holds
out blocks), then one ``rng.permutation(train_blocks)`` per epoch, drawn
when the epoch starts (so a fit stopped early draws no more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.base import is_dask_collection

from ._blocks import Batch, num_rows
from ._quirks import ALWAYS_PER_SAMPLE, NEVER_PER_SAMPLE, takes_classes


# -- fit parameters ---------------------------------------------------------------
def is_per_sample(name: str, value: Any, n_rows: float) -> bool:
    """Whether a fit parameter has one entry per row and is cut into blocks.

    ``sample_weight`` and dask collections always are (a wrong length is then
    an error, not a constant); other in-memory array-likes are when their
    length equals the number of rows. ``classes`` never is.

    Examples
    --------
    >>> import numpy as np
    >>> is_per_sample("sample_weight", np.ones(3), 5)
    True
    >>> is_per_sample("classes", np.arange(5), 5), is_per_sample("eta", 0.1, 5)
    (False, False)
    """
    if name in NEVER_PER_SAMPLE or value is None or isinstance(value, (str, bytes)):
        return False
    if is_dask_collection(value):
        return True
    if (
        not hasattr(value, "__len__")
        or isinstance(value, dict)
        or getattr(value, "ndim", None) == 0
    ):
        return False  # a scalar (a sample_weight of 2.0 is one for every row)
    if name in ALWAYS_PER_SAMPLE or math.isnan(n_rows):
        # rows of X unknown (a dask DataFrame): trust the type
        return True
    try:
        return num_rows(value) == n_rows
    except TypeError:
        return False


def split_fit_params(
    fit_params: dict[str, Any], n_rows: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(per_sample, constant)``: the fit parameters cut into blocks, and the
    ones passed unchanged to every ``partial_fit`` call.

    A per-sample parameter whose length is not X's row count is an error,
    raised here, before any block is read.

    Examples
    --------
    >>> import numpy as np
    >>> per_sample, constant = split_fit_params(
    ...     {"sample_weight": np.ones(4), "classes": [0, 1]}, 4)
    >>> sorted(per_sample), constant
    (['sample_weight'], {'classes': [0, 1]})
    >>> split_fit_params({"sample_weight": np.ones(3)}, 4)
    Traceback (most recent call last):
    ...
    ValueError: sample_weight has 3 entries but X has 4 rows: a per-sample fit parameter needs one entry per row of X
    """
    per_sample, constant = {}, {}
    for name, value in fit_params.items():
        if is_per_sample(name, value, n_rows):
            _check_length(name, value, n_rows)
            per_sample[name] = value
        else:
            constant[name] = value
    return per_sample, constant


def _check_length(name: str, value: Any, n_rows: float) -> None:
    if is_dask_collection(value) or math.isnan(n_rows):
        return  # checked when cut into X's blocks
    try:
        n = num_rows(value)
    except TypeError:
        raise ValueError(
            f"{name} must have one entry per row of X, got {type(value).__name__}"
        ) from None
    if n != n_rows:
        raise ValueError(
            f"{name} has {n} entries but X has {int(n_rows)} rows: a per-sample "
            "fit parameter needs one entry per row of X"
        )


def classes_source(
    model: Any, has_y: bool, constant: dict[str, Any], first_call: bool
) -> str | None:
    """Where ``classes`` for ``partial_fit`` comes from, when it must be added.

    ``"fitted"``: the model's own ``classes_``; ``"y"``: one pass over y
    (only before the first ``partial_fit``: later blocks may lack some
    classes, and meta-estimators keep no ``classes_`` of their own); None:
    given by the user, or not wanted.
    """
    if not has_y or "classes" in constant or not takes_classes(model):
        return None
    if getattr(model, "classes_", None) is not None:
        return "fitted"
    return "y" if first_call else None


# -- blocks, epochs and batches ---------------------------------------------------
def hold_out(
    n_blocks: int, fraction: float, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` block indices, both sorted: ``fraction`` of the
    blocks (rounded, at least one) drawn with ``rng`` are held out.

    Examples
    --------
    >>> train, held = hold_out(10, 0.2, np.random.RandomState(0))
    >>> held.tolist(), len(train)
    ([2, 8], 8)
    """
    n_held = max(1, int(round(fraction * n_blocks)))
    if n_held >= n_blocks:
        raise ValueError(
            f"early stopping holds out {n_held} of {n_blocks} blocks for "
            "validation, leaving none to train on; give validation_data=(X, y), "
            "more blocks, or a smaller validation_fraction"
        )
    held = np.sort(rng.permutation(n_blocks)[:n_held])
    return np.setdiff1d(np.arange(n_blocks), held), held


class EpochOrders(Sequence):
    """The order of the training blocks in each epoch, drawn as it is reached.

    Epoch ``e`` visits the blocks in the ``e``-th ``rng.permutation(train)``
    (``train`` itself without shuffling), the same orders as drawing them
    all at once; drawing each when the fit first asks for it keeps a fit
    with a huge ``max_epochs`` (stopped early, or by Ctrl-C) from drawing,
    and holding, millions of orders before its first block.

    Examples
    --------
    >>> orders = EpochOrders(np.arange(3), 10**12, True, np.random.RandomState(0))
    >>> len(orders), orders[1].tolist()
    (1000000000000, [2, 0, 1])
    >>> [o.tolist() for o in EpochOrders(np.arange(3), 2, False, None)]
    [[0, 1, 2], [0, 1, 2]]
    """

    def __init__(
        self, train: np.ndarray, n_epochs: int, shuffle: bool, rng: Any
    ) -> None:
        self.train = train
        self.n_epochs = n_epochs
        self.shuffle = shuffle
        self._rng = rng
        self._drawn: list[np.ndarray] = []

    def __len__(self) -> int:
        return self.n_epochs

    def __getitem__(self, epoch: int) -> np.ndarray:  # type: ignore[override]
        if not -self.n_epochs <= epoch < self.n_epochs:
            raise IndexError(f"epoch {epoch} of {self.n_epochs}")
        epoch %= self.n_epochs
        if not self.shuffle:
            return self.train
        while len(self._drawn) <= epoch:  # in order: the documented sequence
            self._drawn.append(self._rng.permutation(self.train))
        return self._drawn[epoch]


def epoch_orders(
    train: np.ndarray, n_epochs: int, shuffle: bool, rng: np.random.RandomState
) -> EpochOrders:
    """The order of the training blocks in each epoch (see :class:`EpochOrders`).

    Examples
    --------
    >>> [o.tolist() for o in epoch_orders(np.arange(3), 2, False, None)]
    [[0, 1, 2], [0, 1, 2]]
    """
    return EpochOrders(train, n_epochs, shuffle, rng)


def plan_batches(
    order: Sequence[int], rows: Sequence[int] | None, batch_size: int | None
) -> list[Batch]:
    """Cut the blocks, visited in ``order``, into batches of ``batch_size`` rows.

    Without ``batch_size`` each block is one batch. With it, the rows of the
    blocks in visiting order are cut into consecutive batches of exactly
    ``batch_size`` rows (the last may be shorter): large blocks are split and
    small ones joined, and empty blocks vanish.

    Examples
    --------
    >>> plan_batches([1, 0], [3, 2], None)
    [[(1, None)], [(0, None)]]
    >>> plan_batches([1, 0], [3, 2], 3)  # block 0 has 3 rows, block 1 has 2
    [[(1, slice(0, 2, None)), (0, slice(0, 1, None))], [(0, slice(1, 3, None))]]
    """
    if batch_size is None:
        return [[(int(b), None)] for b in order]
    if rows is None:
        raise ValueError("cutting blocks into batches needs their row counts")
    batches: list[Batch] = []
    current: Batch = []
    filled = 0
    for b in order:
        start, n = 0, int(rows[b])
        while start < n:
            take = min(batch_size - filled, n - start)
            current.append((int(b), slice(start, start + take)))
            filled, start = filled + take, start + take
            if filled == batch_size:
                batches.append(current)
                current, filled = [], 0
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class FitPlan:
    """Which blocks a fit trains on, in which order, cut into which batches.

    Attributes
    ----------
    train : array of int
        The blocks trained on (all but the held-out ones).
    held_out : array of int or None
        The blocks kept for validation, never trained on.
    orders : sequence of array of int
        The order of the training blocks in each epoch, drawn as the fit
        reaches it (:class:`EpochOrders`).
    rows : tuple of int or None
        Rows of each block; needed only with ``batch_size``.
    batch_size : int or None
    """

    train: np.ndarray
    held_out: np.ndarray | None
    orders: Sequence[np.ndarray]
    rows: tuple[int, ...] | None = None
    batch_size: int | None = None

    @property
    def n_epochs(self) -> int:
        return len(self.orders)

    def batches(self, epoch: int) -> list[Batch]:
        """The batches of epoch ``epoch`` (counted from 0), in order."""
        return plan_batches(self.orders[epoch], self.rows, self.batch_size)


def make_plan(
    n_blocks: int,
    rng: np.random.RandomState,
    *,
    max_epochs: int = 1,
    shuffle: bool = True,
    hold_out_fraction: float | None = None,
    rows: Sequence[int] | None = None,
    batch_size: int | None = None,
) -> FitPlan:
    """The plan of a fit over ``n_blocks`` blocks (see :class:`FitPlan`).

    ``hold_out_fraction``: hold out that share of the blocks for validation
    (None: train on all). Random draws follow the module's sequence.

    Examples
    --------
    >>> plan = make_plan(4, np.random.RandomState(0), max_epochs=2)
    >>> [order.tolist() for order in plan.orders]
    [[2, 3, 1, 0], [0, 2, 1, 3]]
    >>> plan.batches(0)[:2]
    [[(2, None)], [(3, None)]]
    """
    train, held = np.arange(n_blocks), None
    if hold_out_fraction is not None:
        train, held = hold_out(n_blocks, hold_out_fraction, rng)
    orders = epoch_orders(train, max_epochs, shuffle, rng)
    rows = None if rows is None else tuple(int(r) for r in rows)
    return FitPlan(train, held, orders, rows, batch_size)


# -- how far ahead ------------------------------------------------------------------
#: With prefetch="auto", at most about this many bytes of blocks are held at
#: once (being read, waiting, and being fitted); fewer where the cores need
#: fewer (see prefetch_and_group).
PREFETCH_BYTES = 512 * 2**20
PREFETCH_RANGE = (2, 64)
# Blocks computed in one scheduler call share its fixed cost, but the first
# partial_fit waits for the whole first group, and the call's threads compete
# with partial_fit for the cores: groups stop at about this many bytes.
GROUP_BYTES = 16 * 2**20


def blocks_within(budget: float, block_bytes: float, low: int, high: int) -> int:
    """How many blocks of ``block_bytes`` fit in ``budget`` bytes, kept within
    ``[low, high]``; ``high`` when the block size is unknown.

    >>> blocks_within(100, 30, 1, 10), blocks_within(100, float("nan"), 1, 10)
    (3, 10)
    """
    if not (math.isfinite(block_bytes) and block_bytes > 0):
        return high
    return int(min(max(budget // block_bytes, low), high))


def prefetch_and_group(
    prefetch: int | str,
    block_bytes: float,
    batch_bytes: float | None = None,
    cluster_threads: int | None = None,
    cores: int | None = None,
) -> tuple[int, int]:
    """Blocks to compute ahead, and blocks per scheduler call.

    ``block_bytes`` is the size of a block of X (NaN when unknown);
    ``batch_bytes`` that of a batch, when ``batch_size`` re-cuts the blocks.
    "auto" holds about ``PREFETCH_BYTES`` (the memory bound) and at most one
    group more than there are threads to compute groups: ``cores`` here, or
    ``cluster_threads``, the threads of a cluster's workers. One group being
    read or fitted by each thread and one waiting keep every thread busy;
    further ahead reads no faster and only holds memory (on 2 cores with
    80 MB blocks, holding 3 instead of 6 cut a pipeline's peak memory by
    about 250 MB at the same or less time; ``python -m benchmarks --only
    prefetch`` compares the two. On a cluster, the busiest of 2
    single-thread workers peaked at 790 MB holding 6 batches, 620 MB
    holding 3).

    Examples
    --------
    >>> prefetch_and_group("auto", 32_000)  # small blocks: many per call
    (64, 32)
    >>> prefetch_and_group("auto", 40e6)  # 40 MB blocks: one per call
    (13, 1)
    >>> prefetch_and_group("auto", 40e6, cores=2)  # 2 reading or fitting, 1 waiting
    (3, 1)
    >>> prefetch_and_group("auto", 40e6, cluster_threads=2)
    (3, 1)
    >>> prefetch_and_group(8, 40e6, cores=2)  # a number is taken as given
    (8, 1)
    """
    if batch_bytes is not None and math.isfinite(block_bytes):
        block_bytes = min(block_bytes, batch_bytes)
    if not block_bytes > 0:
        block_bytes = math.nan  # empty X: the size says nothing
    if prefetch != "auto":
        ahead = int(prefetch)
    elif math.isfinite(block_bytes):
        ahead = blocks_within(PREFETCH_BYTES, block_bytes, *PREFETCH_RANGE)
    else:
        ahead = 4
    auto = prefetch == "auto"
    if auto and cluster_threads is not None:
        # a cluster's batches travel one per future: the bound is in batches
        ahead = max(PREFETCH_RANGE[0], min(ahead, cluster_threads + 1))
    group = blocks_within(GROUP_BYTES, block_bytes, 1, max(1, ahead // 2))
    if auto and cluster_threads is None and cores is not None:
        ahead = max(PREFETCH_RANGE[0], min(ahead, group * (cores + 1)))
    return ahead, group


def readers_for(prefetch: int, group: int, cores: int) -> int:
    """Reader threads: as many groups computed at once as the prefetch
    budget holds, up to twice the cores.

    While ``partial_fit`` holds one core, readers use the others; when it
    waits for a block, every core reads. A reader is not always busy on a
    core: it waits on the storage library's own threads, and merged fits
    make each reader fit its batch too. With ``prefetch="auto"`` the budget
    is itself bounded by the cores (one group more than there are cores:
    see :func:`prefetch_and_group`), so the readers are as many; a larger
    ``prefetch`` given by hand gets up to twice the cores. The readers
    yield the cores to the consumer.

    >>> readers_for(prefetch=3, group=1, cores=2), readers_for(64, 32, 8)
    (3, 2)
    >>> readers_for(prefetch=8, group=1, cores=2)
    4
    """
    return max(1, min(2 * cores, prefetch // max(group, 1)))


#: With merge="auto", batches smaller than this are fitted in one chain:
#: fitting a fresh copy and merging costs a fixed time per batch.
MERGE_MIN_BYTES = 2 * 2**20


def merge_batches(merge: bool | str, mergeable: bool, batch_bytes: float) -> bool:
    """Whether to fit batches apart and merge their states.

    "auto" merges batches known to be large enough; a DataFrame's batch
    size is not known, so it keeps the serial loop (``merge=True`` asks).

    >>> merge_batches("auto", True, 80e6), merge_batches("auto", True, 32e3)
    (True, False)
    >>> merge_batches(True, True, 32e3), merge_batches("auto", True, float("nan"))
    (True, False)
    """
    if merge is False or not mergeable:
        return False
    if merge is True:
        return True
    return math.isfinite(batch_bytes) and batch_bytes >= MERGE_MIN_BYTES


#: Blocks of X this large are read (decompressed, computed) in threads from
#: the start, without measuring one inline first: their reading frees the
#: GIL and takes far longer than a thread costs.
LARGE_BLOCK_BYTES = 8 * 2**20


def overlap_for(block_bytes: float) -> bool | str:
    """``BlockStream``'s ``overlap``: threads from the start for large blocks,
    else "auto" (measure first).

    >>> overlap_for(80e6), overlap_for(32e3), overlap_for(float("nan"))
    (True, 'auto', 'auto')
    """
    if math.isfinite(block_bytes) and block_bytes >= LARGE_BLOCK_BYTES:
        return True
    return "auto"
