"""The checks of a search's parameters, run by ``fit`` before any block is read.

Messages keep dask-ml's wording where dask-ml has one ("max_iter < 1 is
not supported", "patience >= 2", "The goal of `patience` ..."), so code
that matched them keeps working.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

from sklearn.utils import check_random_state

PATIENCE_WARNING = (
    "The goal of `patience` is to stop training estimators that have already "
    "converged *when few estimators remain*. Hyperband is already an "
    "(almost optimal) adaptive scheme, and patience should be large to be "
    "a minimal layer on top of Hyperband. To clear this warning, set "
    "patience=True, patience >= {minimum}, or tol=None."
)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int) -> int:
    if not _is_int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_max_iter(max_iter: Any, allow_none: bool) -> int | None:
    """``max_iter``: an integer >= 1 (or None where allowed)."""
    if max_iter is None and allow_none:
        return None
    if not _is_int(max_iter):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if max_iter < 1:
        raise ValueError(
            f"Received max_iter={max_iter}. max_iter < 1 is not supported: it "
            "is the most partial_fit calls any model gets"
        )
    return int(max_iter)


def check_patience(patience: Any) -> int:
    """``patience`` as an int, 0 when off (False or 0), as dask-ml reads it."""
    if not isinstance(patience, numbers.Integral):
        raise ValueError(
            "patience must be an integer (or a subclass like boolean), not "
            f"patience={patience!r} of type {type(patience).__name__}"
        )
    if patience and patience <= 1:
        raise ValueError(
            f"patience={patience!r}<=1 will always detect a plateau. To "
            "resolve this, set patience >= 2 (or patience=False to turn the "
            "plateau rule off)"
        )
    return int(patience)


def hyperband_patience(patience: Any, max_iter: int, eta: float, tol: Any) -> Any:
    """Hyperband's ``patience``: True means ``max(max_iter // eta, 1)``; a
    smaller int warns (unless ``tol`` turns the rule off)."""
    if patience is False:
        return False
    minimum = max(max_iter // eta, 1)
    if patience is True:
        return int(minimum)
    if _is_int(patience) and patience < minimum and not _tol_off(tol):
        warnings.warn(
            PATIENCE_WARNING.format(minimum=minimum), UserWarning, stacklevel=4
        )
    return patience


def _tol_off(tol: Any) -> bool:
    return tol is None or (isinstance(tol, numbers.Real) and math.isnan(tol))


def check_tol(tol: Any) -> float | None:
    if tol is not None and not isinstance(tol, numbers.Real):
        raise ValueError(f"tol must be a number or None, got {tol!r}")
    return None if tol is None else float(tol)


def check_test_size(test_size: Any) -> float | None:
    if test_size is None:
        return None
    if not (isinstance(test_size, numbers.Real) and 0 < test_size < 1):
        raise ValueError(
            "test_size must be None (one block) or the fraction of X's blocks "
            f"held out for validation, in (0, 1); got {test_size!r}"
        )
    return float(test_size)


def check_aggressiveness(aggressiveness: Any) -> float:
    if (
        isinstance(aggressiveness, bool)
        or not isinstance(aggressiveness, numbers.Real)
        or not aggressiveness > 1
    ):
        raise ValueError(f"aggressiveness must be a number > 1, got {aggressiveness!r}")
    return aggressiveness


def check_n_initial_parameters(value: Any) -> int | str:
    if value == "grid":
        return "grid"
    if not _is_int(value) or value < 1:
        raise ValueError(
            f"n_initial_parameters must be an integer >= 1 or 'grid', got {value!r}"
        )
    return int(value)


def check_verbose(verbose: Any) -> None:
    if not isinstance(verbose, numbers.Real) or not verbose >= 0:
        raise ValueError(f"verbose must be a number >= 0 or a bool, got {verbose!r}")


def check_estimator(estimator: Any) -> None:
    if estimator is None:
        raise ValueError("the search needs an estimator; got None")
    if not hasattr(estimator, "partial_fit"):
        raise TypeError(
            f"{type(estimator).__name__} has no partial_fit method, so its "
            "candidates cannot learn block by block; use an estimator with "
            "partial_fit"
        )


def check_parameters(parameters: Any, estimator: Any) -> None:
    """Non-empty; every name a parameter of the estimator."""
    grids = [parameters] if isinstance(parameters, Mapping) else parameters
    if not isinstance(grids, list | tuple) or not all(
        isinstance(g, Mapping) for g in grids
    ):
        raise TypeError(
            "parameters must be a dict of parameter names to lists or "
            f"distributions (or a list of such dicts), got {parameters!r}"
        )
    if not grids or not all(grids):
        raise ValueError(
            "parameters is empty: give at least one parameter to search, with "
            "a list of values or a scipy.stats distribution"
        )
    known = estimator.get_params(deep=True)
    for grid in grids:
        for name, values in grid.items():
            if name not in known:
                raise ValueError(
                    f"{name!r} is not a parameter of {type(estimator).__name__}; "
                    f"its parameters are {sorted(known)}"
                )
            if not hasattr(values, "rvs") and len(values) == 0:
                raise ValueError(f"parameters[{name!r}] is empty: give it values")


def check_random_state_param(random_state: Any) -> None:
    check_random_state(random_state)


def fits_per_score(fits: Any, scores_per_fit: Any) -> int:
    """dask-ml's deprecated alias ``scores_per_fit`` still sets the value."""
    if scores_per_fit is not None and fits != 1:
        raise ValueError("Specify fits_per_score, not scores_per_fit")
    if scores_per_fit:
        warnings.warn(
            "scores_per_fit has been deprecated since Dask-ML v1.4.0; specify "
            f"fits_per_score={scores_per_fit} instead",
            UserWarning,
            stacklevel=4,
        )
        fits = scores_per_fit
    return check_int("fits_per_score", fits, 1)
