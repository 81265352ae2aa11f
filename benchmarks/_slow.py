"""An estimator whose partial_fit is slower than reading a block.

It lives in its own module so that the workers of a cluster, which run in
other processes, can import it by name.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import SGDClassifier


class SlowSGD(SGDClassifier):
    """SGDClassifier whose partial_fit also does about as much work again
    (three extra passes of arithmetic over the block), deterministically."""

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        for _ in range(3):
            np.tanh(X).sum()  # holds the core, changes nothing
        return super().partial_fit(X, y, classes=classes, sample_weight=sample_weight)
