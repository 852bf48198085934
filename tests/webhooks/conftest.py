"""Webhook fixtures: one service that may deliver to loopback, a fresh account per test, receivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import Service, start_service
from tests.webhooks.helpers import FAST, new_account
from tests.webhooks.receiver import Behaviour, Receiver


@pytest.fixture(scope="package")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service for most webhook tests: http and loopback receivers allowed (development mode)."""
    svc = start_service(tmp_path_factory.mktemp("hooks") / "data", **FAST)
    yield svc
    svc.stop()


@pytest.fixture
def api(hooks: Service, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A client of a fresh account on the `hooks` service."""
    with new_account(hooks, request.node.name[:60]) as client:
        yield client


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(behaviour: Behaviour | None = None, port: int = 0) -> Receiver:
        r = Receiver(port=port, behaviour=behaviour)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
