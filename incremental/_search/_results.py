"""What a finished (or interrupted) search reports: ``cv_results_``,
``history_``, ``model_history_``, the best model's index and ``metadata_``.

Pure functions of the schedule and the records of the scores; the layouts
are dask-ml's (one row per model, its last score), with ``rank_test_score``
ranked over the whole search.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ._schedule import BracketState, Schedule

#: The columns of ``cv_results_`` that are timings (the others repeat exactly).
TIMING_COLUMNS = (
    "mean_partial_fit_time",
    "std_partial_fit_time",
    "mean_score_time",
    "std_score_time",
)


def model_history(records: Sequence[dict]) -> dict[Hashable, list[dict]]:
    """``{model_id: its records in order}``; the records are the same objects."""
    out: dict[Hashable, list[dict]] = {}
    for record in records:
        out.setdefault(record["model_id"], []).append(record)
    return out


def _column(values: list[Any]) -> np.ndarray:
    """A 1-D array of ``values``: their common dtype, else objects (a tuple
    or a missing parameter stays one entry)."""
    try:
        array = np.array(values)
    except ValueError:
        array = None
    if array is not None and array.ndim == 1 and array.dtype != object:
        return array
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values))


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 for the best score, ties share the lowest rank; NaN ranks last."""
    key = np.where(np.isnan(scores), -np.inf, scores)
    return rankdata(-key, method="min").astype(np.int64)


def cv_results(schedule: Schedule, records: Sequence[dict], with_bracket: bool):
    """dask-ml's ``cv_results_``: a dict of arrays, one row per model in
    ``schedule.models`` order."""
    history = model_history(records)
    models = schedule.models
    rows = [history.get(m.id, []) for m in models]
    fit_times = [_mean_std([r["partial_fit_time"] for r in rows_]) for rows_ in rows]
    score_times = [_mean_std([r["score_time"] for r in rows_]) for rows_ in rows]
    test_score = np.array([m.last_score for m in models], dtype=float)
    params = _column([m.params for m in models])
    results = {
        "params": params,
        "model_id": _column([m.id for m in models]),
        "partial_fit_calls": np.array([m.calls for m in models], dtype=np.int64),
        "test_score": test_score,
        "rank_test_score": _ranks(test_score),
        "mean_partial_fit_time": np.array([t[0] for t in fit_times]),
        "std_partial_fit_time": np.array([t[1] for t in fit_times]),
        "mean_score_time": np.array([t[0] for t in score_times]),
        "std_score_time": np.array([t[1] for t in score_times]),
    }
    names = sorted({name for m in models for name in m.params})
    for name in names:
        results[f"param_{name}"] = _column([m.params.get(name) for m in models])
    if with_bracket:
        results["bracket"] = np.array([m.bracket for m in models], dtype=np.int64)
    return results


def best_index(schedule: Schedule) -> int | None:
    """Row of the best model: the highest latest score among the models still
    alive (dask-ml's choice), the first such row on a tie."""
    best = schedule.best()
    return None if best is None else schedule.models.index(best)


def bracket_metadata(bracket: BracketState, planned_decisions: Sequence[int]) -> dict:
    """One bracket's ``metadata_`` entry from what it did.

    ``decisions``: the calls at which it scored, without the first call
    unless the bracket planned a decision there.
    """
    decisions = {calls for m in bracket.models for calls, _ in m.scores}
    if 1 not in planned_decisions:
        decisions.discard(1)
    return {
        "bracket": bracket.id,
        "n_models": len(bracket.models),
        "partial_fit_calls": sum(m.calls for m in bracket.models),
        "decisions": sorted(decisions),
    }


def search_metadata(schedule: Schedule) -> dict:
    """``metadata_`` of a one-bracket search: calls, models, most calls."""
    calls = [m.calls for m in schedule.models]
    return {
        "partial_fit_calls": sum(calls),
        "n_models": len(calls),
        "max_iter": max(calls),
    }
