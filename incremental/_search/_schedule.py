"""The search's schedule: every decision of an adaptive search that needs no computing.

What is decided here, from the search's parameters and the validation
scores reported to it: the candidates of each bracket and the seeds they are
sampled with, Hyperband's brackets, which blocks are held out, the one
sequence of training batches every candidate follows, and, after each
round, which candidates go on, how many more ``partial_fit`` calls each one
gets, and which are dropped (dask-ml's rules for ``IncrementalSearchCV``,
``SuccessiveHalvingSearchCV`` and ``HyperbandSearchCV``, with their
``patience``/``tol`` plateau rule and ``max_iter`` cap). Also ``metadata``:
how many models and calls a search will make.

Nothing here computes, reads a clock, starts a thread or calls an estimator:
``tests/test_search_schedule.py`` runs it with a scheduler that refuses
every call.

Random draws: parameters are sampled with scikit-learn's
``ParameterSampler(parameters, n, random_state=seed)`` (``ParameterGrid``
for ``"grid"``), one seed per bracket (:func:`bracket_seeds`). The blocks
follow one documented sequence from ``rng = check_random_state(random_state)``,
as in a fit's plan: first the held-out blocks
(``np.sort(rng.permutation(n_blocks)[:n_held])``, unless validation data is
given), then one ``rng.permutation(train_blocks)`` per pass over them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils import check_random_state

from .._blocks import Batch
from .._plan import plan_batches


# -- candidates ---------------------------------------------------------------------
def sample_candidates(parameters: Any, n: int | str, seed: Any) -> list[dict]:
    """The parameter settings to try: ``n`` sampled with ``seed``, or the grid.

    Examples
    --------
    >>> sample_candidates({"a": [1, 2], "b": ["x"]}, "grid", None)
    [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    >>> len(sample_candidates({"a": [1, 2, 3]}, 2, 0))
    2
    """
    if n == "grid":
        return list(ParameterGrid(parameters))
    return list(ParameterSampler(parameters, n, random_state=seed))


def bracket_seeds(random_state: Any, bracket_ids: Iterable[int]) -> dict[int, Any]:
    """The seed each Hyperband bracket samples its candidates with (dask-ml's).

    Bracket 0 gets ``random_state`` itself, so it samples what an
    ``IncrementalSearchCV`` with the same ``random_state`` samples; bracket
    ``s`` gets ``start + s`` with
    ``start = check_random_state(random_state).randint(2**31)``.

    >>> bracket_seeds(0, [2, 1, 0])
    {2: 209652398, 1: 209652397, 0: 0}
    """
    start = int(check_random_state(random_state).randint(2**31))
    return {s: random_state if s == 0 else start + s for s in bracket_ids}


# -- Hyperband's brackets and metadata ------------------------------------------------
@dataclass(frozen=True)
class BracketPlan:
    """One bracket of Hyperband: ``n_models`` candidates, ``n_initial_iter`` calls
    each before the first halving."""

    bracket: int
    n_models: int
    n_initial_iter: int


def hyperband_brackets(max_iter: int, aggressiveness: float) -> list[BracketPlan]:
    """Hyperband's brackets, highest first, as dask-ml computes them.

    The float expressions are kept as written there: ``math.log(243, 3)`` is
    4.999..., so ``max_iter=243`` has 5 brackets, not 6.

    >>> [(b.bracket, b.n_models, b.n_initial_iter) for b in hyperband_brackets(40, 3)]
    [(3, 27, 1), (2, 12, 4), (1, 6, 13), (0, 4, 40)]
    """
    s_max = math.floor(math.log(max_iter, aggressiveness))
    budget = (s_max + 1) * max_iter
    return [
        BracketPlan(
            s,
            int(math.ceil(budget / max_iter * aggressiveness**s / (s + 1))),
            int(max_iter * aggressiveness**-s),
        )
        for s in range(s_max, -1, -1)
    ]


def _round(value: float) -> int:
    """Round half to even, as ``np.round`` does (dask-ml's rounding)."""
    return int(np.round(value))


def paper_bracket(n: int, r: int, s: int, eta: float) -> tuple[int, list[int]]:
    """``(partial_fit calls, decisions)`` of one bracket by the Hyperband paper's
    algorithm: ``s + 1`` rounds, round i trains the survivors to
    ``round(r * eta**i)`` calls and keeps ``floor(floor(n * eta**-i) / eta)``.

    >>> paper_bracket(27, 1, 3, 3)
    (81, [1, 3, 9, 27])
    """
    calls = [0] * n
    alive, decisions = n, []
    for i in range(s + 1):
        r_i = _round(r * eta**i)
        calls[:alive] = [r_i] * alive
        decisions.append(r_i)
        alive = min(alive, math.floor(math.floor(n * eta**-i) / eta))
    return sum(calls), sorted(decisions)


def halving_metadata(n: int, r: int, eta: float, max_iter: int | None) -> dict:
    """``SuccessiveHalvingSearchCV.metadata``: calls and models, without fitting.

    Step k trains the first ``floor(n * eta**-k)`` models to
    ``round(r * eta**k)`` calls; it stops after a step with at most one model,
    or whose calls reach ``max_iter``.

    >>> halving_metadata(10, 1, 3, None)
    {'partial_fit_calls': 22, 'n_models': 10, 'max_iter': 9}
    """
    calls = [0] * n
    k = 0
    while True:
        n_k, r_k = math.floor(n * eta**-k), _round(r * eta**k)
        calls[:n_k] = [r_k] * n_k
        if n_k <= 1 or (max_iter and r_k >= max_iter):
            break
        k += 1
    return {"partial_fit_calls": sum(calls), "n_models": n, "max_iter": max(calls)}


def last_scored_call(max_iter: int | None, fits_per_score: int) -> int | None:
    """Calls of each model of an ``IncrementalSearchCV`` without patience: it is
    scored after 1, 1 + f, 1 + 2f, ... calls until that reaches ``max_iter``.

    >>> last_scored_call(11, 3), last_scored_call(None, 1)
    (13, None)
    """
    if max_iter is None:
        return None
    return 1 + math.ceil(max(max_iter - 1, 0) / fits_per_score) * fits_per_score


# -- the rules of one bracket ------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """How a bracket decides its next round.

    ``kind`` is ``"fixed"`` (``IncrementalSearchCV``: every model gets
    ``fits_per_score`` more calls) or ``"halving"`` (successive halving of
    ``n`` models from ``r`` calls by ``eta``). ``patience`` 0 is off.
    """

    kind: str
    max_iter: int | None
    patience: int = 0
    tol: float | None = 1e-3
    fits_per_score: int = 1
    n: int = 0
    r: int = 0
    eta: float = 3


@dataclass(eq=False)
class ModelState:
    """One candidate: where it is in the stream and what it was scored.

    ``calls`` partial_fit calls made (its next one uses position ``calls`` of
    the stream); ``target`` the calls it must reach before its next score;
    ``scores`` its ``(calls, score)`` pairs; ``orders`` the ``(calls,
    instruction)`` of each decision under patience (to finish an order in
    pieces of at most ``patience`` calls).
    """

    id: Hashable
    bracket: int
    params: dict
    calls: int = 0
    target: int = 1
    alive: bool = True
    scores: list[tuple[int, float]] = field(default_factory=list)
    orders: list[tuple[int, int]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Still to be fed before its next score."""
        return self.alive and self.calls < self.target

    @property
    def due(self) -> bool:
        """Reached its target and not scored there yet."""
        return (
            self.alive
            and self.calls == self.target
            and (not self.scores or self.scores[-1][0] != self.calls)
        )

    @property
    def last_score(self) -> float:
        return self.scores[-1][1] if self.scores else math.nan


@dataclass(eq=False)
class BracketState:
    """The models of one bracket, its rule, and how far it has halved.

    ``settings``: what the caller wants to remember of it (Hyperband keeps
    the bracket's ``SuccessiveHalvingSearchCV`` parameters there).
    """

    id: int
    rule: Rule
    models: list[ModelState]
    settings: dict = field(default_factory=dict)
    steps: int = 0
    done: bool = False

    @property
    def alive(self) -> list[ModelState]:
        return [m for m in self.models if m.alive]

    @property
    def ready(self) -> bool:
        """Every live model is scored at its target: time to decide."""
        return not self.done and not any(m.active or m.due for m in self.models)


def _score_key(score: float) -> float:
    """Scores compared with NaN as the worst."""
    return -math.inf if math.isnan(score) else score


def plateau_filter(rule: Rule, orders: dict[Hashable, int], models: dict) -> dict:
    """``orders`` with 0 for each model at ``max_iter`` or on a plateau.

    A plateau: with ``patience``, once a model has at least ``patience``
    calls, none of its scores within its last ``patience`` calls beats the
    oldest of them by more than ``tol``.
    """
    out = {}
    for key, calls_to_make in orders.items():
        model = models[key]
        if rule.max_iter and model.calls >= rule.max_iter:
            out[key] = 0
        elif rule.patience and model.calls >= rule.patience:
            window = [s for c, s in model.scores if model.calls - c <= rule.patience]
            gains = np.asarray(window[1:], dtype=float) - window[0]
            plateau = rule.tol is not None and gains.size and gains.max() <= rule.tol
            out[key] = 0 if plateau else calls_to_make
        else:
            out[key] = calls_to_make
    return out


def _halving_orders(bracket: BracketState, alive: list[ModelState]) -> dict:
    """Successive halving: keep the best ``floor(n * eta**-i)``, each trained to
    ``round(r * eta**i)`` calls in all; nobody kept means stop."""
    rule = bracket.rule
    if all(m.calls == 1 for m in alive):
        bracket.steps = 0
    n_i = math.floor(rule.n * rule.eta**-bracket.steps)
    r_i = _round(rule.r * rule.eta**bracket.steps)
    if r_i == 1:  # the first call, made for every model, was this step
        bracket.steps = 1
        n_i = math.floor(rule.n * rule.eta**-1)
        r_i = _round(rule.r * rule.eta)
    # sorted() is stable: among equal scores the lower model id is kept.
    best = sorted(alive, key=lambda m: _score_key(m.last_score), reverse=True)[:n_i]
    bracket.steps += 1
    if not best:
        return {m.id: 0 for m in alive}
    return {m.id: max(r_i - m.calls, 0) for m in best}


def _adapt(bracket: BracketState, alive: list[ModelState]) -> dict:
    if bracket.rule.kind == "halving":
        return _halving_orders(bracket, alive)
    return {m.id: bracket.rule.fits_per_score for m in alive}


def additional_calls(bracket: BracketState) -> dict[Hashable, int]:
    """dask-ml's decision for one bracket: ``{model id: more calls}``.

    A live model missing from the answer is dropped; 0 keeps it, idle. Under
    ``patience`` an order is given in pieces of at most ``patience`` calls,
    with the plateau rule checked between them.
    """
    rule = bracket.rule
    alive = bracket.alive
    models = {m.id: m for m in alive}
    if rule.patience and max(m.calls for m in alive) > 1:
        remaining = {
            m.id: (sum(m.orders[-1]) if m.orders else m.calls) - m.calls for m in alive
        }
        if sum(remaining.values()) > 0:
            out = plateau_filter(rule, remaining, models)
            return {k: min(v, rule.patience) for k, v in out.items()}
    orders = _adapt(bracket, alive)
    if rule.patience:
        for key, calls_to_make in orders.items():
            models[key].orders.append((models[key].calls, calls_to_make))
    out = plateau_filter(rule, orders, models)
    if rule.patience:
        return {k: min(v, rule.patience) for k, v in out.items()}
    return out


def decide_next_round(bracket: BracketState) -> None:
    """Apply the bracket's next decision: drop, set targets, or finish."""
    orders = additional_calls(bracket)
    for model in bracket.alive:
        if model.id not in orders:
            model.alive = False
    if not any(orders.values()):
        bracket.done = True
        return
    for model in bracket.models:
        if model.id in orders:
            model.target = model.calls + orders[model.id]


class Schedule:
    """Every bracket of a search, walked along one stream of batches.

    Every model starts at 0 calls with a target of 1. The caller repeats:
    take :meth:`next_position` (None: the search is over), feed that batch to
    :meth:`to_feed`, report it with :meth:`fed`, score :meth:`due` and report
    the scores with :meth:`scored`, which lets every bracket whose live models
    are all scored decide its next round.

    Examples
    --------
    >>> rule = Rule("halving", max_iter=None, n=4, r=1, eta=2)
    >>> models = [ModelState(i, 0, {}) for i in range(4)]
    >>> schedule = Schedule([BracketState(0, rule, models)])
    >>> while (p := schedule.next_position()) is not None:
    ...     schedule.fed(schedule.to_feed(p))
    ...     _ = schedule.scored({m.id: float(m.id) for m in schedule.due()})
    >>> [m.calls for m in models], [m.alive for m in models]
    ([1, 1, 2, 4], [False, False, False, True])
    """

    def __init__(self, brackets: Sequence[BracketState]):
        self.brackets = list(brackets)
        self.models = [m for b in self.brackets for m in b.models]
        self._by_id = {m.id: m for m in self.models}
        if len(self._by_id) != len(self.models):
            raise ValueError("model ids must be unique")

    @property
    def finished(self) -> bool:
        return all(b.done for b in self.brackets)

    def next_position(self) -> int | None:
        """The stream position to feed next: the fewest calls among models
        still training (every model's k-th call is position k - 1)."""
        calls = [m.calls for m in self.models if m.active]
        return min(calls) if calls else None

    def to_feed(self, position: int) -> list[ModelState]:
        """The models that take the batch at ``position`` now."""
        return [m for m in self.models if m.active and m.calls == position]

    def fed(self, models: Iterable[ModelState]) -> None:
        for model in models:
            model.calls += 1

    def due(self) -> list[ModelState]:
        """Models that reached their target and wait for a score."""
        return [m for m in self.models if m.due]

    def unscored(self) -> list[ModelState]:
        """Live models trained since their last score (to score on Ctrl-C)."""
        return [
            m
            for m in self.models
            if m.alive and m.calls and (not m.scores or m.scores[-1][0] != m.calls)
        ]

    def scored(
        self, scores: dict[Hashable, float], decide: bool = True
    ) -> list[BracketState]:
        """Record scores; every bracket now ready decides (unless ``decide`` is
        False: the search is stopping). Returns the brackets that decided."""
        for key, score in scores.items():
            model = self._by_id[key]
            model.scores.append((model.calls, score))
        decided = []
        for bracket in self.brackets if decide else []:
            while bracket.ready:
                decide_next_round(bracket)
                decided.append(bracket)
        return decided

    def best(self) -> ModelState | None:
        """The live model with the highest latest score (dask-ml's choice): on
        a tie the first in ``models`` order."""
        scored = [m for m in self.models if m.alive and m.scores]
        if not scored:
            return None
        return max(scored, key=lambda m: _score_key(m.last_score))


def dry_run(schedule: Schedule, score: Any = None) -> Schedule:
    """Walk ``schedule`` to its end with made-up scores: ``score(model)``,
    by default 0 for every model. The calls each model makes without patience
    do not depend on the scores."""
    score = score or (lambda model: 0.0)
    while (position := schedule.next_position()) is not None:
        schedule.fed(schedule.to_feed(position))
        schedule.scored({m.id: float(score(m)) for m in schedule.due()})
    return schedule


def planned_positions(brackets: Sequence[BracketState]) -> int | None:
    """The most calls any model can make: how far the stream may go.

    Found by a dry run without patience (patience only stops models earlier);
    None when unbounded (``max_iter=None`` without halving).
    """
    if any(b.rule.kind == "fixed" and b.rule.max_iter is None for b in brackets):
        return None
    copies = [
        BracketState(
            b.id,
            replace(b.rule, patience=0),
            [ModelState(m.id, m.bracket, m.params) for m in b.models],
        )
        for b in brackets
    ]
    return max(m.calls for m in dry_run(Schedule(copies)).models)


# -- blocks: held out, and the one stream --------------------------------------------------
def held_out_blocks(
    n_blocks: int, test_size: float | None, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, held_out)`` block indices, sorted: ``test_size`` of the blocks
    (rounded, at least one; None: one) drawn with ``rng``.

    >>> train, held = held_out_blocks(10, None, np.random.RandomState(0))
    >>> held.tolist(), len(train)
    ([2], 9)
    """
    n_held = 1 if test_size is None else max(1, int(round(test_size * n_blocks)))
    if n_held >= n_blocks:
        raise ValueError(
            f"test_size={test_size!r} holds out {n_held} of the {n_blocks} blocks "
            "of X for validation, leaving none to train on; give "
            "validation_data=(X_val, y_val) to fit, more blocks (a dask array "
            "with more row chunks), or a smaller test_size"
        )
    held = np.sort(rng.permutation(n_blocks)[:n_held])
    return np.setdiff1d(np.arange(n_blocks), held), held


class StreamOrder:
    """The one sequence of training batches every candidate follows.

    Consecutive passes over the training blocks, each in the order of the
    next ``rng.permutation(train)``, cut into batches of ``batch_size`` rows
    when given (one block per batch otherwise). A model's k-th
    ``partial_fit`` call takes the batch at position ``k - 1``. Passes are
    drawn as they are needed.

    >>> order = StreamOrder(np.arange(3), np.random.RandomState(0))
    >>> [order.batch(p) for p in range(4)]
    [[(2, None)], [(1, None)], [(0, None)], [(2, None)]]
    """

    def __init__(
        self,
        train: np.ndarray,
        rng: np.random.RandomState,
        rows: Sequence[int] | None = None,
        batch_size: int | None = None,
    ):
        self.train = np.asarray(train)
        self.rng = rng
        self.rows = rows
        self.batch_size = batch_size
        self._passes: list[list[Batch]] = []
        self._starts = [0]

    def epoch(self, index: int) -> list[Batch]:
        """The batches of pass ``index`` (counted from 0), in order."""
        while len(self._passes) <= index:
            order = self.rng.permutation(self.train)
            batches = plan_batches(order, self.rows, self.batch_size)
            if not batches:
                raise ValueError("the training blocks have no rows to train on")
            self._passes.append(batches)
            self._starts.append(self._starts[-1] + len(batches))
        return self._passes[index]

    def start(self, index: int) -> int:
        """The position of the first batch of pass ``index``."""
        self.epoch(index)
        return self._starts[index]

    def locate(self, position: int) -> tuple[int, int]:
        """``(pass, index within it)`` of a stream position."""
        index = 0
        while self.start(index + 1) <= position:
            index += 1
        return index, position - self._starts[index]

    def batch(self, position: int) -> Batch:
        epoch, offset = self.locate(position)
        return self.epoch(epoch)[offset]
