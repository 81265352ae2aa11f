"""The public search classes: ``IncrementalSearchCV``,
``SuccessiveHalvingSearchCV`` and ``HyperbandSearchCV``.

Each one only stores its parameters (dask-ml's names, order and defaults),
checks them and builds its brackets of candidates with their rule when
``fit`` asks, and says what ``metadata`` is; fitting is ``_base.BaseSearch``.
"""

from __future__ import annotations

import warnings
from typing import Any

from ._base import BaseSearch
from ._params import (
    check_aggressiveness,
    check_int,
    check_max_iter,
    check_n_initial_parameters,
    check_patience,
    check_random_state_param,
    check_tol,
    fits_per_score,
    hyperband_patience,
)
from ._results import bracket_metadata, search_metadata
from ._schedule import (
    BracketState,
    ModelState,
    Rule,
    Schedule,
    bracket_seeds,
    halving_metadata,
    hyperband_brackets,
    last_scored_call,
    paper_bracket,
    sample_candidates,
)

_FITTED_ATTRIBUTES = """
    Attributes
    ----------
    cv_results_ : dict of numpy arrays
        One row per candidate (load it with ``pandas.DataFrame``):
        ``params``, ``param_<name>``, ``model_id``, ``partial_fit_calls``,
        ``test_score`` (its last validation score), ``rank_test_score`` (over
        the whole search), ``mean_partial_fit_time``,
        ``std_partial_fit_time``, ``mean_score_time``, ``std_score_time``{bracket}.
    best_estimator_ : estimator
        The best candidate still in the race at the end (highest last
        score), as trained: it is not refitted.
    best_index_ : int
        Its row in ``cv_results_``.
    best_score_ : float
        Its last validation score.
    best_params_ : dict
        Its parameters.
    history_ : list of dict
        One record per score, in order: ``model_id``, ``params``,
        ``partial_fit_calls``, ``partial_fit_time`` (its last call's seconds),
        ``score``, ``score_time``, ``elapsed_wall_time`` (seconds since the
        search started){bracket_record}.
    model_history_ : dict
        ``{{model_id: its records in history_}}``.
    metadata_ : dict
        What the search did, with the keys of ``metadata``.
    scorer_ : callable
        ``scorer_(estimator, X, y)``: the validation metric, reduced block by
        block.
    n_splits_ : int
        1: one validation set.
    multimetric_ : bool
        False.
    train_blocks_ : array of int
        The blocks of X trained on.
    validation_blocks_ : array of int or None
        The blocks of X held out for validation (None with ``validation_data``).
    train_block_reads_ : int
        Training blocks read (not counting those the block cache served):
        ``train_block_reads_ / len(train_blocks_)`` is the number of passes
        over the training data.
    validation_block_reads_ : int
        Validation blocks read: each one each time models are scored, unless
        the block cache keeps them.
    estimator_ : estimator
        ``best_estimator_``, used by the post-fit methods.
"""

_NOTES = """
    Notes
    -----
    One stream feeds every candidate: all follow the same sequence of
    training blocks (consecutive passes, each in the order of
    ``rng.permutation(train_blocks)`` with
    ``rng = sklearn.utils.check_random_state(random_state)``, drawn after the
    held-out blocks), so a candidate's k-th ``partial_fit`` call takes the
    k-th block of that sequence, and its state equals its own plain
    ``partial_fit`` loop over those blocks, bit for bit. The stream is
    walked once: each block read is passed to every candidate that needs it
    (in parallel threads), and the search's rounds decide as soon as their
    candidates are scored. Scores use the held-out blocks (``test_size``,
    default one block) or ``validation_data``, with a metric reduced from
    per-block statistics; X is never gathered.

    The same ``random_state`` gives the same ``cv_results_`` (but for the
    timing columns) whatever the scheduler, cluster or number of threads,
    if the estimator itself is deterministic (give it a ``random_state``).

    Ctrl-C stops after the block under way: the candidates trained since
    their last score are scored, the fitted attributes are set from the
    search so far, and ``KeyboardInterrupt`` is raised.
"""

_COMMON_PARAMETERS = """
    test_size : float, optional
        Fraction of X's blocks held out for validation (rounded, at least
        one); None holds out one block. Must be None when ``fit`` is given
        ``validation_data``.
    patience : int or False, default=False
        Stop training a candidate when none of its scores over its last
        ``patience`` calls beats the oldest of them by more than ``tol``.
    tol : float or None, default=0.001
        The improvement that counts; None turns the plateau rule off.
    random_state : int, RandomState instance or None, default=None
        Seeds the candidates' sampling, the held-out blocks and the block
        order (see the notes).
    scoring : str, optional
        Validation metric, reduced block by block: one of
        ``incremental.STREAMING_METRICS``; None is the estimator's own score.
    verbose : bool or number, default=False
        A progress bar (tqdm) per round with the candidates still training
        and the best score. One log record per round goes to
        ``logging.getLogger("incremental")`` at INFO in any case.
    prefix : str, default=""
        Log records start with ``[CV<prefix>]``.
"""

_STREAM_PARAMETERS = """
    batch_size : int, optional
        Train on batches of this many rows cut from the blocks in stream
        order, instead of whole blocks: then one unit of ``max_iter`` is one
        batch.
    cache : "auto", False, int or str, default="auto"
        The block cache's budget, as in :class:`~incremental.Incremental`:
        the validation blocks (read at every scoring) are kept in memory
        within it, and the training blocks too when the search passes over
        them more than once; "auto" allows half the memory available, False
        keeps nothing. Not used on a dask.distributed cluster.
"""


def _fixed_models(params: list[dict]) -> list[ModelState]:
    return [ModelState(i, 0, p) for i, p in enumerate(params)]


class IncrementalSearchCV(BaseSearch):
    __doc__ = (
        """Train candidates side by side on one stream of blocks; keep the best.

    Every candidate is ``clone(estimator).set_params(**params)`` for a
    setting sampled from ``parameters`` and gets ``fits_per_score``
    ``partial_fit`` calls (each on one block) between two validation scores,
    up to ``max_iter`` calls, or until its score reaches a plateau
    (``patience``). dask-ml's ``IncrementalSearchCV``, run on one stream.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
    parameters : dict or list of dicts
        Parameter names to lists of values or scipy.stats distributions.
    n_initial_parameters : int or "grid", default=10
        Settings sampled with ``ParameterSampler``; "grid" takes all of
        ``ParameterGrid(parameters)``.
    decay_rate : None
        Accepted for dask-ml's signature and ignored (dask-ml deprecated it).
"""
        + _COMMON_PARAMETERS
        + """
    fits_per_score : int, default=1
        ``partial_fit`` calls between two scores.
    max_iter : int or None, default=100
        The most calls a candidate gets (the last order may pass it, as in
        dask-ml); None needs ``patience``.
    scores_per_fit : int, optional
        dask-ml's deprecated name of ``fits_per_score``.
    predict_meta, predict_proba_meta, transform_meta : array, optional
        See :class:`~incremental.ParallelPostFit`.
"""
        + _STREAM_PARAMETERS
        + _FITTED_ATTRIBUTES.format(bracket="", bracket_record="")
        + _NOTES
        + """
    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.linear_model import SGDClassifier
    >>> from incremental import IncrementalSearchCV
    >>> X = da.random.default_rng(0).normal(size=(2_000, 4), chunks=200)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> search = IncrementalSearchCV(
    ...     SGDClassifier(random_state=0), {"alpha": [1e-4, 1e-1]},
    ...     n_initial_parameters="grid", max_iter=3, random_state=0)
    >>> search.metadata
    {'partial_fit_calls': 6, 'n_models': 2, 'max_iter': 3}
    >>> search = search.fit(X, y)  # 9 blocks trained on, 1 held out
    >>> search.cv_results_["partial_fit_calls"].tolist(), search.train_block_reads_
    ([3, 3], 3)
    >>> search.best_params_
    {'alpha': 0.0001}
    """
    )

    def __init__(  # dask-ml's names, order and defaults
        self,
        estimator: Any,
        parameters: Any,
        n_initial_parameters: int | str = 10,
        decay_rate: Any = None,
        test_size: float | None = None,
        patience: int | bool = False,
        tol: float | None = 1e-3,
        fits_per_score: int = 1,
        max_iter: int | None = 100,
        random_state: Any = None,
        scoring: str | None = None,
        verbose: bool | float = False,
        prefix: str = "",
        scores_per_fit: int | None = None,
        predict_meta: Any = None,
        predict_proba_meta: Any = None,
        transform_meta: Any = None,
        *,
        batch_size: int | None = None,
        cache: Any = "auto",
    ):
        self.estimator = estimator
        self.parameters = parameters
        self.n_initial_parameters = n_initial_parameters
        self.decay_rate = decay_rate
        self.test_size = test_size
        self.patience = patience
        self.tol = tol
        self.fits_per_score = fits_per_score
        self.max_iter = max_iter
        self.random_state = random_state
        self.scoring = scoring
        self.verbose = verbose
        self.prefix = prefix
        self.scores_per_fit = scores_per_fit
        self.predict_meta = predict_meta
        self.predict_proba_meta = predict_proba_meta
        self.transform_meta = transform_meta
        self.batch_size = batch_size
        self.cache = cache

    def _rule(self) -> Rule:
        if self.decay_rate is not None:
            warnings.warn(
                "decay_rate is ignored: dask-ml deprecated it in v1.4.0 (its "
                "InverseDecaySearchCV is not provided here); pass decay_rate=None",
                UserWarning,
                stacklevel=4,
            )
        patience = check_patience(self.patience)
        max_iter = check_max_iter(self.max_iter, allow_none=True)
        if max_iter is None and not patience:
            raise ValueError(
                "max_iter=None trains every candidate for ever without patience; "
                "give max_iter or patience"
            )
        return Rule(
            "fixed",
            max_iter,
            patience,
            check_tol(self.tol),
            fits_per_score(self.fits_per_score, self.scores_per_fit),
        )

    def _make_brackets(self) -> list[BracketState]:
        rule = self._rule()
        n = check_n_initial_parameters(self.n_initial_parameters)
        check_random_state_param(self.random_state)
        params = sample_candidates(self.parameters, n, self.random_state)
        return [BracketState(0, rule, _fixed_models(params))]

    @property
    def metadata(self) -> dict:
        """Models and ``partial_fit`` calls the search makes without patience
        (``max_iter`` None: unbounded, so None)."""
        n = self.n_initial_parameters
        if n == "grid":
            n = len(sample_candidates(self.parameters, "grid", None))
        last = last_scored_call(
            check_max_iter(self.max_iter, allow_none=True),
            fits_per_score(self.fits_per_score, self.scores_per_fit),
        )
        total = None if last is None else n * last
        return {"partial_fit_calls": total, "n_models": n, "max_iter": last}

    def _fitted_metadata(self, schedule: Schedule) -> dict:
        return search_metadata(schedule)


class SuccessiveHalvingSearchCV(BaseSearch):
    __doc__ = (
        """Successive halving on one stream of blocks: train many, keep the best.

    ``n_initial_parameters`` candidates each get ``n_initial_iter``
    ``partial_fit`` calls; then, round after round, the best
    ``1 / aggressiveness`` of them are kept and trained ``aggressiveness``
    times longer, until one is left (dask-ml's rule, including its stopping
    rule: a round may train past ``max_iter``).

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
    parameters : dict or list of dicts
        Parameter names to lists of values or scipy.stats distributions.
    n_initial_parameters : int or "grid", default=10
        Candidates sampled with ``ParameterSampler`` (or the whole grid).
    n_initial_iter : int
        Calls each candidate gets before the first halving (required).
    max_iter : int or None, default=None
        Stop once the candidates kept have this many calls; None: when
        halving leaves none.
    aggressiveness : float, default=3
        How much is cut each round.
"""
        + _COMMON_PARAMETERS
        + _STREAM_PARAMETERS
        + _FITTED_ATTRIBUTES.format(bracket="", bracket_record="")
        + _NOTES
        + """
    Examples
    --------
    >>> import dask.array as da
    >>> from scipy.stats import loguniform
    >>> from sklearn.linear_model import SGDClassifier
    >>> from incremental import SuccessiveHalvingSearchCV
    >>> X = da.random.default_rng(0).normal(size=(2_000, 4), chunks=200)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> search = SuccessiveHalvingSearchCV(
    ...     SGDClassifier(random_state=0), {"alpha": loguniform(1e-5, 1)},
    ...     n_initial_parameters=9, n_initial_iter=1, random_state=0)
    >>> search.metadata
    {'partial_fit_calls': 21, 'n_models': 9, 'max_iter': 9}
    >>> search = search.fit(X, y)
    >>> sorted(search.cv_results_["partial_fit_calls"].tolist())
    [1, 1, 1, 1, 1, 1, 3, 3, 9]
    >>> search.train_block_reads_  # 9 positions of the stream, each read once
    9
    """
    )

    def __init__(  # dask-ml's names, order and defaults
        self,
        estimator: Any,
        parameters: Any,
        n_initial_parameters: int | str = 10,
        n_initial_iter: int | None = None,
        max_iter: int | None = None,
        aggressiveness: float = 3,
        test_size: float | None = None,
        patience: int | bool = False,
        tol: float | None = 1e-3,
        random_state: Any = None,
        scoring: str | None = None,
        verbose: bool | float = False,
        prefix: str = "",
        *,
        batch_size: int | None = None,
        cache: Any = "auto",
    ):
        self.estimator = estimator
        self.parameters = parameters
        self.n_initial_parameters = n_initial_parameters
        self.n_initial_iter = n_initial_iter
        self.max_iter = max_iter
        self.aggressiveness = aggressiveness
        self.test_size = test_size
        self.patience = patience
        self.tol = tol
        self.random_state = random_state
        self.scoring = scoring
        self.verbose = verbose
        self.prefix = prefix
        self.batch_size = batch_size
        self.cache = cache

    def _n_models(self) -> int:
        n = check_n_initial_parameters(self.n_initial_parameters)
        if n == "grid":
            return len(sample_candidates(self.parameters, "grid", None))
        return n

    def _n_initial_iter(self) -> int:
        return check_int("n_initial_iter", self.n_initial_iter, 1)

    def _make_brackets(self) -> list[BracketState]:
        rule = Rule(
            "halving",
            check_max_iter(self.max_iter, allow_none=True),
            check_patience(self.patience),
            check_tol(self.tol),
            n=self._n_models(),
            r=self._n_initial_iter(),
            eta=check_aggressiveness(self.aggressiveness),
        )
        check_random_state_param(self.random_state)
        params = sample_candidates(
            self.parameters,
            check_n_initial_parameters(self.n_initial_parameters),
            self.random_state,
        )
        return [BracketState(0, rule, _fixed_models(params))]

    @property
    def metadata(self) -> dict:
        """``{"partial_fit_calls", "n_models", "max_iter"}`` of the search,
        without fitting (dask-ml's)."""
        return halving_metadata(
            self._n_models(),
            self._n_initial_iter(),
            check_aggressiveness(self.aggressiveness),
            check_max_iter(self.max_iter, allow_none=True),
        )

    def _fitted_metadata(self, schedule: Schedule) -> dict:
        return search_metadata(schedule)


class HyperbandSearchCV(BaseSearch):
    __doc__ = (
        """Hyperband on one stream of blocks: several successive halvings at once.

    The brackets of Hyperband (dask-ml's formula) trade many candidates
    trained briefly against few trained long: bracket ``s`` starts
    ``n_s`` candidates with ``max_iter * aggressiveness**-s`` calls each and
    halves them (:class:`SuccessiveHalvingSearchCV`). Here every bracket
    trains on the same stream of blocks and is scored on the same
    validation blocks, so one read of a block feeds every candidate of
    every bracket, and the search reads X about ``max_iter / n_blocks``
    times in all. ``metadata`` says how many candidates and calls it makes.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
    parameters : dict or list of dicts
        Parameter names to lists of values or scipy.stats distributions.
    max_iter : int, default=81
        The most ``partial_fit`` calls a candidate gets.
    aggressiveness : float, default=3
        How much each halving cuts.
    patience : int or bool, default=False
        As below; True is ``max(max_iter // aggressiveness, 1)``.
"""
        + _COMMON_PARAMETERS.replace(
            "    patience : int or False, default=False\n"
            "        Stop training a candidate when none of its scores over its last\n"
            "        ``patience`` calls beats the oldest of them by more than ``tol``.\n",
            "",
        )
        + """
    predict_meta, predict_proba_meta, transform_meta : array, optional
        See :class:`~incremental.ParallelPostFit`.
"""
        + _STREAM_PARAMETERS
        + _FITTED_ATTRIBUTES.format(
            bracket=", ``bracket``",
            bracket_record=", ``bracket``",
        )
        + _NOTES
        + """
    Examples
    --------
    >>> import dask.array as da
    >>> from scipy.stats import loguniform
    >>> from sklearn.linear_model import SGDClassifier
    >>> from incremental import HyperbandSearchCV
    >>> X = da.random.default_rng(0).normal(size=(2_000, 4), chunks=200)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> search = HyperbandSearchCV(
    ...     SGDClassifier(random_state=0),
    ...     {"alpha": loguniform(1e-5, 1), "loss": ["hinge", "log_loss"]},
    ...     max_iter=9, random_state=0)
    >>> search.metadata["n_models"], search.metadata["partial_fit_calls"]
    (17, 69)
    >>> search = search.fit(X, y)
    >>> int(search.cv_results_["partial_fit_calls"].sum()), search.train_block_reads_
    (69, 9)
    """
    )

    _with_bracket = True

    def __init__(  # dask-ml's names, order and defaults
        self,
        estimator: Any,
        parameters: Any,
        max_iter: int = 81,
        aggressiveness: float = 3,
        patience: int | bool = False,
        tol: float | None = 1e-3,
        test_size: float | None = None,
        random_state: Any = None,
        scoring: str | None = None,
        verbose: bool | float = False,
        prefix: str = "",
        predict_meta: Any = None,
        predict_proba_meta: Any = None,
        transform_meta: Any = None,
        *,
        batch_size: int | None = None,
        cache: Any = "auto",
    ):
        self.estimator = estimator
        self.parameters = parameters
        self.max_iter = max_iter
        self.aggressiveness = aggressiveness
        self.patience = patience
        self.tol = tol
        self.test_size = test_size
        self.random_state = random_state
        self.scoring = scoring
        self.verbose = verbose
        self.prefix = prefix
        self.predict_meta = predict_meta
        self.predict_proba_meta = predict_proba_meta
        self.transform_meta = transform_meta
        self.batch_size = batch_size
        self.cache = cache

    def _bracket_params(self) -> dict[int, dict]:
        """Each bracket's ``SuccessiveHalvingSearchCV`` parameters (dask-ml's)."""
        max_iter = check_max_iter(self.max_iter, allow_none=False)
        eta = check_aggressiveness(self.aggressiveness)
        patience = hyperband_patience(self.patience, max_iter, eta, self.tol)
        plans = hyperband_brackets(max_iter, eta)
        seeds = bracket_seeds(self.random_state, [p.bracket for p in plans])
        return {
            p.bracket: {
                "aggressiveness": eta,
                "max_iter": max_iter,
                "n_initial_iter": p.n_initial_iter,
                "n_initial_parameters": p.n_models,
                "patience": patience,
                "prefix": f"{self.prefix}, bracket={p.bracket}",
                "random_state": seeds[p.bracket],
                "scoring": self.scoring,
                "test_size": self.test_size,
                "tol": self.tol,
                "verbose": self.verbose,
            }
            for p in plans
        }

    def _make_brackets(self) -> list[BracketState]:
        brackets = []
        tol = check_tol(self.tol)
        for s, sha in self._bracket_params().items():
            rule = Rule(
                "halving",
                sha["max_iter"],
                check_patience(sha["patience"]),
                tol,
                n=sha["n_initial_parameters"],
                r=sha["n_initial_iter"],
                eta=sha["aggressiveness"],
            )
            params = sample_candidates(
                self.parameters, sha["n_initial_parameters"], sha["random_state"]
            )
            models = [
                ModelState(f"bracket={s}-{i}", s, p) for i, p in enumerate(params)
            ]
            brackets.append(BracketState(s, rule, models, settings=sha))
        return brackets

    @property
    def metadata(self) -> dict:
        """Models and ``partial_fit`` calls of each bracket and in all, by
        the Hyperband paper's algorithm (dask-ml's), without fitting."""
        brackets = []
        for s, sha in sorted(self._bracket_params().items()):
            calls, decisions = paper_bracket(
                sha["n_initial_parameters"],
                sha["n_initial_iter"],
                s,
                sha["aggressiveness"],
            )
            brackets.append(
                {
                    "bracket": s,
                    "n_models": sha["n_initial_parameters"],
                    "partial_fit_calls": calls,
                    "decisions": decisions,
                    "SuccessiveHalvingSearchCV params": sha,
                }
            )
        return _totals(brackets)

    def _fitted_metadata(self, schedule: Schedule) -> dict:
        brackets = []
        for bracket in sorted(schedule.brackets, key=lambda b: b.id):
            sha = bracket.settings
            _, planned = paper_bracket(
                sha["n_initial_parameters"],
                sha["n_initial_iter"],
                bracket.id,
                sha["aggressiveness"],
            )
            entry = bracket_metadata(bracket, planned)
            entry["SuccessiveHalvingSearchCV params"] = sha
            brackets.append(entry)
        return _totals(brackets)


def _totals(brackets: list[dict]) -> dict:
    return {
        "n_models": sum(b["n_models"] for b in brackets),
        "partial_fit_calls": sum(b["partial_fit_calls"] for b in brackets),
        "brackets": brackets,
    }
