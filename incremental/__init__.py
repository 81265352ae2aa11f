"""Fit any scikit-learn estimator with ``partial_fit`` on dask data, block by block.

Public surface:

- :class:`Incremental` fits an estimator with one ``partial_fit`` per block of a
  dask array or DataFrame, and predicts in parallel.
- :class:`ParallelPostFit` fits in memory and predicts, transforms and scores
  dask data in parallel.
- ``STREAMING_METRICS``: the scoring names that are reduced block by block.
- :class:`NotStreamableError`: raised where a metric must be reduced block by
  block and cannot be.
- :class:`IndexMismatchWarning`: blocks of X and y are pandas objects with
  other indexes (rows are paired by position, as scikit-learn pairs them).
- :func:`clear_cache`, :func:`cache_info`: the blocks fits keep in memory.
- ``MERGEABLE``, :func:`register_merge`: estimators fitted in parallel by
  merging the states of batches fitted apart.
- :class:`IncrementalSearchCV`, :class:`SuccessiveHalvingSearchCV` and
  :class:`HyperbandSearchCV`: adaptive hyperparameter search (dask-ml's
  classes), every candidate trained on one stream of blocks.

How the package is built: ``ARCHITECTURE.md`` at the repository's root.
"""

from ._blocks import IndexMismatchWarning
from ._cache import cache_info, clear_cache
from ._incremental import Incremental
from ._merge import MERGES as MERGEABLE
from ._merge import register_merge
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
    "IndexMismatchWarning",
    "IncrementalSearchCV",
    "MERGEABLE",
    "NotStreamableError",
    "ParallelPostFit",
    "STREAMING_METRICS",
    "SuccessiveHalvingSearchCV",
    "__version__",
    "cache_info",
    "clear_cache",
    "register_merge",
]
