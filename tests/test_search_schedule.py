"""The search's schedule is pure: dask-ml's tables and rules, checked without
dask computing anything."""

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import SGDClassifier
from sklearn.utils import check_random_state

from incremental import HyperbandSearchCV, SuccessiveHalvingSearchCV
from incremental._search._schedule import (
    BracketState,
    ModelState,
    Rule,
    Schedule,
    StreamOrder,
    bracket_seeds,
    dry_run,
    halving_metadata,
    held_out_blocks,
    hyperband_brackets,
    last_scored_call,
    planned_positions,
    sample_candidates,
)


@pytest.fixture(autouse=True)
def no_scheduler_calls():
    """The schedule never computes: any scheduler call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the schedule called a dask scheduler")

    with dask.config.set(scheduler=refuse):
        yield


def hyperband(max_iter, aggressiveness=3, **kwargs):
    return HyperbandSearchCV(
        SGDClassifier(),
        {"alpha": [1e-4, 1e-3]},
        max_iter=max_iter,
        aggressiveness=aggressiveness,
        **kwargs,
    )


# -- dask-ml's tables (the spec's worked examples) --------------------------------------
@pytest.mark.parametrize(
    "max_iter, aggressiveness, n_models, calls",
    [
        (1, 3, 1, 1),
        (2, 3, 1, 2),
        (6, 2, 10, 38),
        (9, 3, 17, 69),
        (15, 3, 17, 101),
        (20, 3, 17, 144),
        (27, 3, 49, 357),
        (30, 3, 49, 379),
        (30, 4, 25, 193),
        (40, 3, 49, 475),
        (81, 3, 143, 1581),
        (100, 3, 143, 1810),
        (243, 3, 143, 4743),
    ],
)
def test_hyperband_metadata_matches_dask_ml(max_iter, aggressiveness, n_models, calls):
    metadata = hyperband(max_iter, aggressiveness, random_state=0).metadata
    assert (metadata["n_models"], metadata["partial_fit_calls"]) == (n_models, calls)
    assert set(metadata) == {"n_models", "partial_fit_calls", "brackets"}
    ids = [b["bracket"] for b in metadata["brackets"]]
    assert ids == sorted(ids)
    for bracket in metadata["brackets"]:
        assert set(bracket) == {
            "n_models",
            "partial_fit_calls",
            "bracket",
            "SuccessiveHalvingSearchCV params",
            "decisions",
        }


@pytest.mark.parametrize(
    "max_iter, pairs",
    [
        (81, {4: (81, 1), 3: (34, 3), 2: (15, 9), 1: (8, 27), 0: (5, 81)}),
        (40, {3: (27, 1), 2: (12, 4), 1: (6, 13), 0: (4, 40)}),
        (243, {4: (81, 3), 3: (34, 9), 2: (15, 27), 1: (8, 81), 0: (5, 243)}),
    ],
)
def test_hyperband_brackets(max_iter, pairs):
    plans = hyperband_brackets(max_iter, 3)
    assert {p.bracket: (p.n_models, p.n_initial_iter) for p in plans} == pairs
    assert [p.bracket for p in plans] == sorted(pairs, reverse=True)


def test_hyperband_decisions_and_bracket_calls_for_max_iter_40():
    brackets = {
        b["bracket"]: b for b in hyperband(40, random_state=0).metadata["brackets"]
    }
    assert {s: b["partial_fit_calls"] for s, b in brackets.items()} == {
        3: 81,
        2: 104,
        1: 130,
        0: 160,
    }
    assert {s: b["decisions"] for s, b in brackets.items()} == {
        3: [1, 3, 9, 27],
        2: [4, 12, 36],
        1: [13, 39],
        0: [40],
    }


def test_bracket_params_are_dask_mls():
    brackets = hyperband(40, random_state=0).metadata["brackets"]
    assert brackets[1]["SuccessiveHalvingSearchCV params"] == {
        "aggressiveness": 3,
        "max_iter": 40,
        "n_initial_iter": 13,
        "n_initial_parameters": 6,
        "patience": False,
        "prefix": ", bracket=1",
        "random_state": 209652397,
        "scoring": None,
        "test_size": None,
        "tol": 0.001,
        "verbose": False,
    }
    assert brackets[0]["SuccessiveHalvingSearchCV params"]["random_state"] == 0


def test_a_halving_search_from_a_brackets_params_makes_its_calls():
    for bracket in hyperband(81, random_state=0).metadata["brackets"]:
        params = bracket["SuccessiveHalvingSearchCV params"]
        sha = SuccessiveHalvingSearchCV(SGDClassifier(), {"alpha": [1.0]}, **params)
        assert sha.metadata["n_models"] == bracket["n_models"]
        # Successive halving stops on its own rule (a step reaching max_iter),
        # the paper's algorithm after s + 1 rounds: they agree here.
        assert sha.metadata["partial_fit_calls"] == bracket["partial_fit_calls"]


def test_bracket_seeds():
    seeds = bracket_seeds(0, [3, 2, 1, 0])
    assert seeds == {3: 209652399, 2: 209652398, 1: 209652397, 0: 0}
    assert bracket_seeds(0, [1]) == bracket_seeds(0, [1])
    assert bracket_seeds(None, [1]) != bracket_seeds(None, [1])


def test_bracket_zero_samples_what_one_search_with_the_same_seed_samples():
    dist = {"alpha": np.logspace(-5, 0, 50).tolist(), "l1_ratio": [0.1, 0.5, 0.9]}
    assert sample_candidates(dist, 4, 0) == sample_candidates(dist, 4, 0)
    assert sample_candidates(dist, 4, 0) != sample_candidates(dist, 4, 1)


def test_halving_metadata():
    assert halving_metadata(10, 1, 3, None) == {
        "partial_fit_calls": 22,
        "n_models": 10,
        "max_iter": 9,
    }
    assert halving_metadata(9, 133, 3, 400)["max_iter"] == 1197


# -- the rules, walked with made-up scores -------------------------------------------------
def one_bracket(rule, n):
    return Schedule([BracketState(0, rule, [ModelState(i, 0, {}) for i in range(n)])])


def rounds(schedule):
    """``[(models scored, at calls), ...]`` as the schedule scored them."""
    scored = {}
    for model in schedule.models:
        for calls, _ in model.scores:
            scored[calls] = scored.get(calls, 0) + 1
    return sorted(scored.items())


def test_halving_overshoots_max_iter_as_dask_ml_does():
    schedule = dry_run(one_bracket(Rule("halving", 5, n=10, r=1, eta=3), 10))
    assert rounds(schedule) == [(1, 10), (3, 3), (9, 1)]
    schedule = dry_run(one_bracket(Rule("halving", 400, n=9, r=133, eta=3), 9))
    assert rounds(schedule) == [(1, 9), (133, 9), (399, 3), (1197, 1)]


def test_halving_keeps_the_best_and_the_lower_id_on_ties():
    schedule = one_bracket(Rule("halving", None, n=6, r=1, eta=3), 6)
    scores = {0: 0.5, 1: 0.9, 2: 0.5, 3: 0.1, 4: 0.9, 5: 0.5}
    dry_run(schedule, lambda m: scores[m.id])
    survivors = [m.id for m in schedule.models if m.calls > 1]
    assert survivors == [1, 4]
    assert schedule.best().id == 1


@pytest.mark.parametrize(
    "max_iter, fits, calls", [(11, 3, [1, 4, 7, 10, 13]), (3, 1, [1, 2, 3])]
)
def test_fixed_rule_scores_every_fits_per_score_calls(max_iter, fits, calls):
    schedule = dry_run(one_bracket(Rule("fixed", max_iter, fits_per_score=fits), 2))
    assert [c for c, _ in schedule.models[0].scores] == calls
    assert last_scored_call(max_iter, fits) == calls[-1]


@pytest.mark.parametrize(
    "tol, score, stops_at",
    [(0, lambda calls: 1.0, 3), (1, lambda calls: float(calls), 10), (4, float, 3)],
)
def test_plateau_rule(tol, score, stops_at):
    rule = Rule("fixed", 10, patience=3, tol=tol)
    schedule = dry_run(one_bracket(rule, 1), lambda m: score(m.calls))
    assert schedule.models[0].calls == stops_at


@pytest.mark.parametrize("slope, stops_at", [(2.5, 16), (0.5, 7)])
def test_plateau_with_several_fits_per_score(slope, stops_at):
    rule = Rule("fixed", 15, patience=5, tol=5, fits_per_score=3)
    schedule = dry_run(one_bracket(rule, 1), lambda m: slope * m.calls)
    assert schedule.models[0].calls == stops_at


def test_tol_none_or_nan_turns_the_plateau_rule_off():
    for tol in (None, float("nan")):
        rule = Rule("fixed", 8, patience=2, tol=tol)
        assert dry_run(one_bracket(rule, 1)).models[0].calls == 8


def test_best_is_among_the_models_still_alive():
    schedule = one_bracket(Rule("halving", None, n=3, r=1, eta=3), 3)
    # model 0 scores highest at 1 call but is dropped after its second score
    dry_run(schedule, lambda m: {1: 0.9}.get(m.calls, 0.1 * m.id))
    assert schedule.best().alive
    assert max(m.last_score for m in schedule.models) > schedule.best().last_score


# -- every bracket on one stream --------------------------------------------------------------
def hyperband_schedule(max_iter, eta=3, patience=0, tol=1e-3):
    brackets = []
    for plan in hyperband_brackets(max_iter, eta):
        rule = Rule(
            "halving",
            max_iter,
            patience,
            tol,
            n=plan.n_models,
            r=plan.n_initial_iter,
            eta=eta,
        )
        models = [
            ModelState((plan.bracket, i), plan.bracket, {})
            for i in range(plan.n_models)
        ]
        brackets.append(BracketState(plan.bracket, rule, models))
    return Schedule(brackets)


@pytest.mark.parametrize("max_iter, calls", [(40, 475), (81, 1581), (27, 357)])
def test_all_brackets_on_one_stream_make_dask_mls_calls(max_iter, calls):
    schedule = dry_run(hyperband_schedule(max_iter))
    assert sum(m.calls for m in schedule.models) == calls
    assert planned_positions(hyperband_schedule(max_iter).brackets) == max_iter


@settings(max_examples=60, deadline=None)
@given(
    max_iter=st.integers(1, 40),
    eta=st.sampled_from([2, 3, 3.5, 4]),
    patience=st.sampled_from([0, 2, 3, 5]),
    seed=st.integers(0, 2**16),
)
def test_the_stream_only_moves_forward(max_iter, eta, patience, seed):
    """Whatever the scores, every model still training is at the stream's
    position, nobody goes past the planned end, and a dropped model is never
    trained again: each position of the stream is read once."""
    rng = np.random.default_rng(seed)
    schedule = hyperband_schedule(max_iter, eta, patience, tol=0.01)
    limit = planned_positions(schedule.brackets)
    last, dropped = -1, set()
    while (position := schedule.next_position()) is not None:
        assert position == last + 1
        assert all(m.calls == position for m in schedule.models if m.active)
        feeding = schedule.to_feed(position)
        assert not dropped & {m.id for m in feeding}
        schedule.fed(feeding)
        schedule.scored({m.id: float(rng.random()) for m in schedule.due()})
        dropped |= {m.id for m in schedule.models if not m.alive}
        last = position
    assert last + 1 <= limit
    assert schedule.finished and schedule.best() is not None


# -- blocks -------------------------------------------------------------------------------
def test_held_out_blocks_follow_the_documented_draws():
    train, held = held_out_blocks(10, None, check_random_state(3))
    expected = np.sort(check_random_state(3).permutation(10)[:1])
    np.testing.assert_array_equal(held, expected)
    assert len(train) == 9 and not set(train) & set(held)
    _, held = held_out_blocks(10, 0.25, check_random_state(0))
    assert len(held) == 2  # round(2.5) == 2


def test_held_out_blocks_must_leave_some_to_train_on():
    with pytest.raises(ValueError, match="leaving none to train on"):
        held_out_blocks(1, None, check_random_state(0))
    with pytest.raises(ValueError, match="validation_data"):
        held_out_blocks(4, 0.9, check_random_state(0))


def test_stream_order_is_consecutive_permutations_after_the_held_out_draw():
    rng = check_random_state(5)
    train, _ = held_out_blocks(6, None, rng)
    order = StreamOrder(train, rng)
    seq = [order.batch(p)[0][0] for p in range(10)]
    expected_rng = check_random_state(5)
    expected_rng.permutation(6)  # the held-out draw
    expected = [*expected_rng.permutation(train), *expected_rng.permutation(train)]
    assert seq == [int(b) for b in expected]
    assert order.locate(7) == (1, 2)


def test_stream_order_cut_into_batches():
    order = StreamOrder(np.arange(2), check_random_state(0), rows=[3, 2], batch_size=2)
    assert len(order.epoch(0)) == 3  # 5 rows in batches of 2
    assert order.start(1) == 3
    assert sum(s.stop - s.start for _, s in order.epoch(0)[0]) == 2
