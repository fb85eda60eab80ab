"""Each service's last known health status, and the mesh status derived from them."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.monitor.core.clock import Clock, utc_now


class ServiceStatus(StrEnum):
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"
    UNKNOWN = "UNKNOWN"  # never reached


class MeshStatus(StrEnum):
    SERVING = "SERVING"
    DEGRADED = "DEGRADED"
    NOT_SERVING = "NOT_SERVING"


@dataclass(frozen=True)
class ServiceState:
    status: ServiceStatus
    since: datetime  # of the last change (while UNKNOWN: of the monitor's start)


@dataclass(frozen=True)
class MeshHealth:
    status: MeshStatus
    services: Mapping[str, ServiceState]
    checked_at: datetime

    @property
    def not_serving(self) -> list[str]:
        """The services that do not serve now, by name (what makes the mesh DEGRADED or NOT_SERVING)."""
        return sorted(name for name, state in self.services.items() if state.status is not ServiceStatus.SERVING)


@dataclass(frozen=True)
class MeshRoles:
    """Which services the mesh cannot do without, and which are interchangeable workers."""

    critical: frozenset[str]
    workers: frozenset[str]


def aggregate(statuses: Mapping[str, ServiceStatus], roles: MeshRoles) -> MeshStatus:
    """SERVING if all serve; NOT_SERVING if a critical service is down or no worker serves; else DEGRADED."""
    serving = {name for name, status in statuses.items() if status is ServiceStatus.SERVING}
    if serving == set(statuses):
        return MeshStatus.SERVING
    critical_down = any(name not in serving for name in roles.critical & statuses.keys())
    workers = roles.workers & statuses.keys()
    if critical_down or (workers and not workers & serving):
        return MeshStatus.NOT_SERVING
    return MeshStatus.DEGRADED


StatusListener = Callable[[str, ServiceStatus], None]


class HealthBook:
    """The status cache `GetMeshHealth` answers from; fed by the health watchers."""

    def __init__(self, names: Iterable[str], roles: MeshRoles, *, clock: Clock = utc_now,
                 listener: StatusListener | None = None) -> None:
        self._roles = roles
        self._clock = clock
        self._listener = listener or (lambda _name, _status: None)
        started = clock()
        self._states = {name: ServiceState(ServiceStatus.UNKNOWN, started) for name in names}
        for name in self._states:
            self._listener(name, ServiceStatus.UNKNOWN)

    @property
    def names(self) -> list[str]:
        return list(self._states)

    def record(self, name: str, status: ServiceStatus) -> None:
        """A status the service reported; `since` moves only when the status changes."""
        if self._states[name].status is not status:
            self._states[name] = ServiceState(status, self._clock())
            self._listener(name, status)

    def lost(self, name: str) -> None:
        """The service stopped answering: NOT_SERVING if it was ever reached, else still UNKNOWN."""
        if self._states[name].status is not ServiceStatus.UNKNOWN:
            self.record(name, ServiceStatus.NOT_SERVING)

    def statuses(self) -> dict[str, ServiceStatus]:
        return {name: state.status for name, state in self._states.items()}

    def snapshot(self) -> MeshHealth:
        return MeshHealth(aggregate(self.statuses(), self._roles), dict(self._states), self._clock())
