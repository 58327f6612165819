import pytest

from dist_pool import GlooPool


@pytest.fixture(scope="session")
def gloo_pool():
    """Two gloo processes on 127.0.0.1, shared by the distributed tests and shut down at the end."""
    pool = GlooPool(world=2)
    yield pool
    pool.close()
