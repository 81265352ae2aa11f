"""Fixtures shared by test modules."""

import pytest


@pytest.fixture
def recording_sgd():
    """An SGDClassifier subclass, and the rows of each of its partial_fit calls
    (clones included): to tell that a fit was refused before any block."""
    from sklearn.linear_model import SGDClassifier

    calls = []

    class RecordingClassifier(SGDClassifier):
        def partial_fit(self, X, y, classes=None, sample_weight=None):
            calls.append(len(X))
            return super().partial_fit(
                X, y, classes=classes, sample_weight=sample_weight
            )

    return RecordingClassifier, calls


@pytest.fixture
def client():
    """A dask.distributed Client on a 2-worker in-process LocalCluster."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


class FrameFiles:
    """A dataset written as 40 parquet files and as 40 CSV files, by dask.

    21 columns: ``x0`` ... ``x19`` (float64) and ``y = x0 + x1 > 0`` (int64),
    so every row says whether it is paired with its own label. Partitions
    have uneven lengths and partition 7 is empty. ``lengths`` are the rows of
    each file, ``X`` and ``y`` the whole data in memory.
    """

    def __init__(self, folder, n_rows=4_000, n_files=40, empty=7, seed=0):
        import dask.dataframe as dd
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(seed)
        self.columns = [f"x{j}" for j in range(20)]
        self.X = rng.normal(size=(n_rows, 20))
        self.y = (self.X[:, 0] + self.X[:, 1] > 0).astype(np.int64)
        frame = pd.DataFrame(self.X, columns=self.columns).assign(y=self.y)
        cuts = np.sort(rng.choice(np.arange(1, n_rows), n_files - 2, replace=False))
        bounds = list(zip([0, *cuts], [*cuts, n_rows]))
        bounds.insert(empty, (bounds[empty][0], bounds[empty][0]))
        self.lengths = tuple(int(b - a) for a, b in bounds)
        parts = dd.from_map(
            lambda ab: frame.iloc[ab[0] : ab[1]], bounds, meta=frame[:0]
        )
        self.parquet = str(folder / "data.parquet")
        self.csv = str(folder / "csv" / "part-*.csv")
        parts.to_parquet(self.parquet)
        parts.to_csv(self.csv, index=False, name_function=lambda i: f"{i:03d}")

    def read(self, kind="parquet"):
        import dask.dataframe as dd

        if kind == "parquet":
            return dd.read_parquet(self.parquet)
        return dd.read_csv(self.csv)


@pytest.fixture(scope="session")
def frame_files(tmp_path_factory):
    """:class:`FrameFiles` in a temporary folder, written once per test run."""
    return FrameFiles(tmp_path_factory.mktemp("frame-files"))
