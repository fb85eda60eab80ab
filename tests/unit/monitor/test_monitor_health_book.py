"""Health book-keeping and the mesh status rules."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.monitor.core.health import HealthBook, MeshRoles, MeshStatus, ServiceStatus, aggregate

S, N, U = ServiceStatus.SERVING, ServiceStatus.NOT_SERVING, ServiceStatus.UNKNOWN
ROLES = MeshRoles(critical=frozenset({"gateway", "compliance"}),
                  workers=frozenset({"generation", "embedding", "conversation"}))
NAMES = ("gateway", "compliance", "generation", "embedding", "conversation", "monitor")


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((S, S, S, S, S, S), MeshStatus.SERVING),
        ((N, S, S, S, S, S), MeshStatus.NOT_SERVING),  # gateway down
        ((S, U, S, S, S, S), MeshStatus.NOT_SERVING),  # compliance never reached
        ((S, S, N, N, U, S), MeshStatus.NOT_SERVING),  # no worker serves
        ((S, S, N, S, S, S), MeshStatus.DEGRADED),  # one worker down
        ((S, S, S, S, S, N), MeshStatus.DEGRADED),  # the monitor itself is neither critical nor a worker
        ((S, S, N, N, S, U), MeshStatus.DEGRADED),
    ],
)
def test_mesh_status_rules(statuses: tuple[ServiceStatus, ...], expected: MeshStatus) -> None:
    assert aggregate(dict(zip(NAMES, statuses, strict=True)), ROLES) is expected


def test_roles_absent_from_the_mesh_do_not_count() -> None:
    assert aggregate({"gateway": S, "other": N}, ROLES) is MeshStatus.DEGRADED
    assert aggregate({"solo": S}, ROLES) is MeshStatus.SERVING


def test_since_moves_only_when_the_status_changes() -> None:
    clock = FakeClock()
    started = clock.now
    book = HealthBook(["gateway"], ROLES, clock=clock)
    assert book.snapshot().services["gateway"].status is U
    assert book.snapshot().services["gateway"].since == started

    clock.advance(5)
    book.record("gateway", S)
    clock.advance(5)
    book.record("gateway", S)
    state = book.snapshot().services["gateway"]
    assert (state.status, state.since) == (S, started + timedelta(seconds=5))

    clock.advance(1)
    book.record("gateway", N)
    assert book.snapshot().services["gateway"].since == started + timedelta(seconds=11)
    assert book.snapshot().checked_at == clock.now


def test_lost_stream_is_not_serving_once_reached_and_unknown_before() -> None:
    book = HealthBook(["a", "b"], ROLES)
    book.lost("a")
    assert book.statuses()["a"] is U
    book.record("b", S)
    book.lost("b")
    assert book.statuses()["b"] is N


def test_listener_sees_the_initial_status_and_every_change() -> None:
    seen: list[tuple[str, ServiceStatus]] = []
    book = HealthBook(["a"], ROLES, listener=lambda name, status: seen.append((name, status)))
    book.record("a", S)
    book.record("a", S)
    book.lost("a")
    assert seen == [("a", U), ("a", S), ("a", N)]


def test_the_snapshot_names_the_services_that_do_not_serve() -> None:
    book = HealthBook(NAMES, ROLES, clock=FakeClock())
    for name in NAMES:
        book.record(name, S)
    assert book.snapshot().not_serving == []
    book.lost("generation")
    snapshot = book.snapshot()
    assert (snapshot.status, snapshot.not_serving) == (MeshStatus.DEGRADED, ["generation"])
