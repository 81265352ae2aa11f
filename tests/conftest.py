"""Fixtures shared by test modules."""

import pytest


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
