"""What we know of particular estimators and of scikit-learn's conventions.

Everything the package must know about an estimator that its signature and
tags do not say lives in one table here, :data:`QUIRKS`, looked up by
:func:`quirks_of`; so do the conventions about fit parameters. Other modules
ask these functions instead of testing ``isinstance`` themselves.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any

#: Fit parameters that are never cut into blocks, whatever their length.
NEVER_PER_SAMPLE = frozenset({"classes", "partial_fit_params"})
#: Fit parameters that always have one entry per row of X.
ALWAYS_PER_SAMPLE = frozenset({"sample_weight"})


@dataclass(frozen=True)
class Quirks:
    """What one kind of estimator needs that its signature and tags do not say.

    Attributes
    ----------
    classes_per_output : bool
        ``partial_fit(classes=...)`` wants one array of labels per column of
        a 2-D y (``MultiOutputClassifier``), not the one-vs-rest columns.
    sparse_partial_fit : bool or None
        Whether ``partial_fit`` takes sparse X; None: as the tags say.
    score : str or None
        How the estimator's own ``score`` adds up over blocks, when it is
        neither accuracy (classifiers) nor R^2 (regressors):
        ``"mean_score_samples"`` or ``"sum_of_block_scores"``.
    first_batch_rows : str or None
        The parameter whose value is the fewest rows the first ``partial_fit``
        call accepts (``"n_components"``), so that a too small first block is
        refused before any block is read.
    """

    classes_per_output: bool = False
    sparse_partial_fit: bool | None = None
    score: str | None = None
    first_batch_rows: str | None = None


NO_QUIRKS = Quirks()

#: Class (module, name) -> its quirks. Subclasses inherit them.
QUIRKS: dict[tuple[str, str], Quirks] = {
    ("sklearn.multioutput", "MultiOutputClassifier"): Quirks(classes_per_output=True),
    # Its fit densifies sparse X batch by batch; its partial_fit refuses it. Its
    # first partial_fit needs n_components rows, and says so without the words
    # scikit-learn's one-sample check looks for.
    ("sklearn.decomposition", "IncrementalPCA"): Quirks(
        sparse_partial_fit=False, first_batch_rows="n_components"
    ),
    # score(X) is mean(score_samples(X)).
    ("sklearn.decomposition", "PCA"): Quirks(score="mean_score_samples"),
    # score(X) is -inertia, a sum over samples.
    ("sklearn.cluster", "KMeans"): Quirks(score="sum_of_block_scores"),
    ("sklearn.cluster", "MiniBatchKMeans"): Quirks(score="sum_of_block_scores"),
}


@cache
def _quirk_classes() -> tuple[tuple[type, Quirks], ...]:
    found = []
    for (module, name), quirks in QUIRKS.items():
        try:
            found.append((getattr(importlib.import_module(module), name), quirks))
        except (ImportError, AttributeError):  # pragma: no cover - old sklearn
            continue
    return tuple(found)


def quirks_of(estimator: Any) -> Quirks:
    """The quirks of ``estimator`` (of its nearest class in the table).

    Examples
    --------
    >>> from sklearn.decomposition import IncrementalPCA
    >>> quirks_of(IncrementalPCA()).sparse_partial_fit
    False
    >>> quirks_of(object()) == NO_QUIRKS
    True
    """
    for cls in type(estimator).__mro__:
        for known, quirks in _quirk_classes():
            if cls is known:
                return quirks
    return NO_QUIRKS


def accepts(method: Any, name: str) -> bool:
    """Whether ``method`` names parameter ``name`` in its signature."""
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def forwards_keywords(method: Any) -> bool:
    """Whether ``method`` takes ``**kwargs`` (and may hand them on)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def takes_classes(model: Any) -> bool:
    """Whether ``model.partial_fit`` wants ``classes``: by name, or through the
    ``**kwargs`` a meta-estimator (SelectFromModel) hands to its estimator.

    Examples
    --------
    >>> from sklearn.linear_model import SGDClassifier, SGDRegressor
    >>> takes_classes(SGDClassifier()), takes_classes(SGDRegressor())
    (True, False)
    """
    if accepts(model.partial_fit, "classes"):
        return True
    inner = getattr(model, "estimator", None)
    return (
        forwards_keywords(model.partial_fit)
        and hasattr(inner, "partial_fit")
        and takes_classes(inner)
    )
