"""Shared test setup: offline, non-interactive plotting, tiny grids."""

from __future__ import annotations

import os
import socket

import matplotlib
import pytest

matplotlib.use("Agg")

# Files whose tests take minutes run first, so that with two workers (make test) the rest fills the other one.
_SLOWEST_FIRST = ("test_pipeline.py", "test_synthetic.py", "test_training.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(_SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order within a file is kept


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open an internet socket fails the test: the package must work offline."""

    real_connect = socket.socket.connect

    def guarded(self, address):  # noqa: ANN001
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    yield


@pytest.fixture(scope="session")
def coarse_domain():
    from geothaw.domain import Domain

    return Domain().coarsen(5)


@pytest.fixture(scope="session")
def full_domain():
    from geothaw.domain import Domain

    return Domain()


os.environ.setdefault("MPLBACKEND", "Agg")
