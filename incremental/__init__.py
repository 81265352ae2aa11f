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

How the package is built: ``ARCHITECTURE.md`` at the repository's root.
"""

from ._blocks import IndexMismatchWarning
from ._incremental import Incremental
from ._postfit import ParallelPostFit
from ._scoring import STREAMING_METRICS, NotStreamableError

__version__ = "0.1.0"
__all__ = [
    "Incremental",
    "IndexMismatchWarning",
    "NotStreamableError",
    "ParallelPostFit",
    "STREAMING_METRICS",
    "__version__",
]
