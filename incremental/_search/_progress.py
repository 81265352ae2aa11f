"""What a search shows while it runs: a bar per round, a log record per round.

A round runs from one scoring to the next: the positions of the stream until
the first training model reaches its target. With ``verbose``, each round
has a tqdm bar over its positions, with the models still training and the
best score so far; every round logs one record to
``logging.getLogger("incremental")`` at INFO, whatever ``verbose`` says. The
user's dask ``ProgressBar``, if active, draws one bar per round as well
(not one per scheduler call).
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

from .._progress import DaskProgressBars
from ._schedule import Schedule

logger = logging.getLogger("incremental")


def round_length(schedule: Schedule, position: int) -> int:
    """Positions from ``position`` until the first training model's target."""
    targets = [m.target for m in schedule.models if m.active]
    return max(1, min(targets) - position) if targets else 1


def best_text(schedule: Schedule) -> str:
    best = schedule.best()
    if best is None:
        return "no score yet"
    return f"best {best.last_score:.4g} ({best.id!r}, {best.calls} calls)"


class SearchProgress(contextlib.AbstractContextManager):
    """Bars and log records of one search (see the module).

    Parameters
    ----------
    verbose : bool or number
        0 or False: no bar; anything else: a bar per round and, at the end,
        one line with the best score (2 and above keep every round's bar).
    prefix : str
        Starts every log message as ``[CV<prefix>]``, as in dask-ml.
    """

    def __init__(self, verbose: Any, prefix: str = ""):
        self.verbose = verbose
        self.tag = f"[CV{prefix}]"
        self.round = 0
        self.round_over = True
        self.last_text = ""
        self.bar: Any = None
        self._tqdm: Any = None
        self.dask_bars = DaskProgressBars()
        if verbose:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                logger.warning("verbose needs tqdm (pip install tqdm); logging only")
            else:
                self._tqdm = tqdm

    def __enter__(self) -> SearchProgress:
        self.dask_bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close_bar()
        if self._tqdm is not None and self.last_text:
            self._tqdm.write(f"{self.tag} {self.last_text}")
        self.dask_bars.__exit__(*exc)

    def created(self, bracket: int | None, n_models: int, n_train: int) -> None:
        where = "" if bracket is None else f", bracket={bracket}"
        logger.info(
            "%s creating %d models, trained on %d blocks",
            self.tag[:-1] + where + "]",
            n_models,
            n_train,
        )

    def start_round(self, schedule: Schedule, position: int) -> None:
        self._close_bar()
        self.round += 1
        total = round_length(schedule, position)
        self.dask_bars.start(total)
        if self._tqdm is not None:
            self.bar = self._tqdm(
                total=total,
                desc=f"round {self.round}",
                unit="block",
                leave=self.verbose >= 2,
            )
            self.bar.set_postfix_str(self._postfix(schedule), refresh=False)

    def position_started(self, position: int, schedule: Schedule) -> None:
        """A new bar when the last position ended a round."""
        if self.round_over:
            self.round_over = False
            self.start_round(schedule, position)

    def position_done(self, position: int, schedule: Schedule) -> None:
        self.dask_bars.done()
        if self.bar is not None:
            self.bar.update(1)

    def scored(self, records: list[dict], schedule: Schedule) -> None:
        best = max(
            records, key=lambda r: -math.inf if math.isnan(r["score"]) else r["score"]
        )
        logger.info(
            "%s round %d: validation score of %0.4f received after %d partial_fit "
            "calls; %d models scored, %d still training; %s",
            self.tag,
            self.round,
            best["score"],
            best["partial_fit_calls"],
            len(records),
            sum(m.active for m in schedule.models),
            best_text(schedule),
        )
        self.last_text = f"after round {self.round}: {self._postfix(schedule)}"
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(schedule), refresh=True)
        self.round_over = True

    def _postfix(self, schedule: Schedule) -> str:
        training = sum(m.active for m in schedule.models)
        return f"{training} candidates training, {best_text(schedule)}"

    def _close_bar(self) -> None:
        self.dask_bars.finish()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
