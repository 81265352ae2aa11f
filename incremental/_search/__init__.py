"""Adaptive hyperparameter search on one stream of blocks.

- ``_schedule``: pure decisions (candidates, brackets, rounds, metadata,
  held-out blocks, the stream's order); no computing.
- ``_runner``: one stream of batches feeding many models, scoring many
  models per read of a validation block, the search loop.
- ``_results``: ``cv_results_``, histories, the best model, ``metadata_``.
- ``_progress``: bars and log records per round.
- ``_params``: the checks of the parameters.
- ``_base`` and ``_estimators``: the scikit-learn face.
"""

from ._estimators import (
    HyperbandSearchCV,
    IncrementalSearchCV,
    SuccessiveHalvingSearchCV,
)

__all__ = ["HyperbandSearchCV", "IncrementalSearchCV", "SuccessiveHalvingSearchCV"]
