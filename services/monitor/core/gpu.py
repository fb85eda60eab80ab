"""GPU readings through NVML (nvidia-ml-py); an empty list wherever NVML does not initialise."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuReading:
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0


def _load_nvml() -> ModuleType | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # no package, no driver, no device: all mean "no GPUs"
        log.info("NVML unavailable (%s): reporting no GPUs", type(error).__name__)
        return None
    return pynvml


class NvmlGpus:
    """NVML initialised once (`open()`); `read()` gives one reading per device, [] without NVML."""

    def __init__(self, nvml: ModuleType | None) -> None:
        self._nvml = nvml

    @classmethod
    def open(cls) -> NvmlGpus:
        return cls(_load_nvml())

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def read(self) -> list[GpuReading]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        try:
            return [_read_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
        except nvml.NVMLError as error:
            log.warning("NVML read failed (%s)", type(error).__name__)
            return []

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None


def _read_device(nvml: ModuleType, index: int) -> GpuReading:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    name = nvml.nvmlDeviceGetName(handle)
    return GpuReading(
        index=index,
        name=name.decode() if isinstance(name, bytes) else name,
        utilization_percent=float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        memory_used_bytes=int(memory.used),
        memory_total_bytes=int(memory.total),
        temperature_celsius=float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
    )
