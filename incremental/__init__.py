"""Fit any scikit-learn estimator with ``partial_fit`` on dask data, block by block.

Public surface:

- :class:`Incremental` fits an estimator with one ``partial_fit`` per block of a
  dask array or DataFrame, and predicts in parallel.
- :class:`ParallelPostFit` fits in memory and predicts, transforms and scores
  dask data in parallel.
- ``STREAMING_METRICS``: the scoring names that are reduced block by block.
- :class:`NotStreamableError`: raised where a metric must be reduced block by
  block and cannot be.
- :class:`IncrementalSearchCV`, :class:`SuccessiveHalvingSearchCV` and
  :class:`HyperbandSearchCV`: adaptive hyperparameter search (dask-ml's
  classes), every candidate trained on one stream of blocks.

How the package is built: ``ARCHITECTURE.md`` at the repository's root.
"""

from ._incremental import Incremental
from ._postfit import ParallelPostFit
from ._scoring import STREAMING_METRICS, NotStreamableError
from ._search import (
    HyperbandSearchCV,
    IncrementalSearchCV,
    SuccessiveHalvingSearchCV,
)

__version__ = "0.1.0"
__all__ = [
    "HyperbandSearchCV",
    "Incremental",
    "IncrementalSearchCV",
    "NotStreamableError",
    "ParallelPostFit",
    "STREAMING_METRICS",
    "SuccessiveHalvingSearchCV",
    "__version__",
]
