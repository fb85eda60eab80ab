"""Host readings: CPU, memory, the data directory's disk (psutil) and GPUs (NVML)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

from services.monitor.core import gauges
from services.monitor.core.clock import Clock, utc_now
from services.monitor.core.gpu import GpuReading


@dataclass(frozen=True)
class SystemReading:
    cpu_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    disk_used_bytes: int
    disk_total_bytes: int
    collected_at: datetime
    gpus: tuple[GpuReading, ...] = field(default_factory=tuple)

    @property
    def memory_percent(self) -> float:
        return _percent(self.memory_used_bytes, self.memory_total_bytes)

    @property
    def disk_percent(self) -> float:
        return _percent(self.disk_used_bytes, self.disk_total_bytes)


def _percent(used: int, total: int) -> float:
    return 100.0 * used / total if total else 0.0


def disk_path(data_dir: Path) -> Path:
    """The data directory when it exists (its disk is what fills up), else the root."""
    return data_dir if data_dir.is_dir() else Path("/")


class SystemProbe:
    """Takes readings; blocking (NVML, statfs), so async callers run it in a thread."""

    def __init__(self, disk: Path, gpus: Callable[[], list[GpuReading]], *, clock: Clock = utc_now) -> None:
        self._disk = disk
        self._gpus = gpus
        self._clock = clock
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def read(self) -> SystemReading:
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self._disk))
        return SystemReading(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used_bytes=int(memory.total - memory.available),
            memory_total_bytes=int(memory.total),
            disk_used_bytes=int(disk.used),
            disk_total_bytes=int(disk.total),
            collected_at=self._clock(),
            gpus=tuple(self._gpus()),
        )


def export(reading: SystemReading) -> None:
    """Copy a reading into the monitor's gauges."""
    gauges.SYSTEM_CPU_PERCENT.set(reading.cpu_percent)
    gauges.SYSTEM_MEMORY_USED.set(reading.memory_used_bytes)
    gauges.SYSTEM_MEMORY_TOTAL.set(reading.memory_total_bytes)
    gauges.SYSTEM_DISK_USED.set(reading.disk_used_bytes)
    gauges.SYSTEM_DISK_TOTAL.set(reading.disk_total_bytes)
    for gauge, attribute in _GPU_GAUGES:
        gauge.clear()  # a GPU that went away must not keep its last value
        for gpu in reading.gpus:
            gauge.labels(str(gpu.index)).set(getattr(gpu, attribute))


_GPU_GAUGES = (
    (gauges.GPU_UTILIZATION, "utilization_percent"),
    (gauges.GPU_MEMORY_USED, "memory_used_bytes"),
    (gauges.GPU_MEMORY_TOTAL, "memory_total_bytes"),
    (gauges.GPU_TEMPERATURE, "temperature_celsius"),
)
