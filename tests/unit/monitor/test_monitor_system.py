"""Host readings (real psutil), the NVML-absent path and the gauges they feed."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from services.monitor import mapper
from services.monitor.core import system
from services.monitor.core.gpu import GpuReading, NvmlGpus
from services.monitor.core.system import SystemProbe, SystemReading, disk_path

T0 = datetime(2024, 1, 1, tzinfo=UTC)
GPU = GpuReading(0, "test-gpu", 12.0, 3 * 1024**3, 8 * 1024**3, 55.0)


def test_probe_reads_this_host(tmp_path: Path) -> None:
    reading = SystemProbe(tmp_path, lambda: [GPU], clock=lambda: T0).read()
    assert 0 < reading.memory_used_bytes <= reading.memory_total_bytes
    assert 0 < reading.disk_used_bytes <= reading.disk_total_bytes
    assert 0.0 <= reading.cpu_percent <= 100.0
    assert 0.0 < reading.memory_percent < 100.0
    assert reading.gpus == (GPU,)
    assert reading.collected_at == T0


def test_disk_path_is_the_data_dir_when_it_exists(tmp_path: Path) -> None:
    assert disk_path(tmp_path) == tmp_path
    assert disk_path(tmp_path / "missing") == Path("/")


def test_without_nvml_there_are_no_gpus() -> None:
    gpus = NvmlGpus.open()
    if gpus.available:
        gpus.close()
        pytest.skip("NVML initialises on this machine")
    assert gpus.read() == []
    gpus.close()
    assert NvmlGpus(None).read() == []


class _NvmlError(Exception):
    pass


def _fake_nvml(count: int, fail: bool = False) -> SimpleNamespace:
    """Stands in for pynvml where no driver exists; same call shapes as nvidia-ml-py."""

    def memory(_handle: int) -> SimpleNamespace:
        if fail:
            raise _NvmlError
        return SimpleNamespace(used=2 * 1024**3, total=4 * 1024**3)

    return SimpleNamespace(
        NVMLError=_NvmlError,
        NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetName=lambda handle: b"Fake GPU" if handle == 0 else "Fake GPU",
        nvmlDeviceGetUtilizationRates=lambda _handle: SimpleNamespace(gpu=37),
        nvmlDeviceGetTemperature=lambda _handle, _sensor: 61,
        nvmlShutdown=lambda: None,
    )


def test_nvml_readings_are_mapped_and_read_errors_give_no_gpus() -> None:
    readings = NvmlGpus(_fake_nvml(2)).read()
    assert [(g.index, g.name, g.utilization_percent, g.memory_percent, g.temperature_celsius) for g in readings] == [
        (0, "Fake GPU", 37.0, 50.0, 61.0), (1, "Fake GPU", 37.0, 50.0, 61.0)]
    assert NvmlGpus(_fake_nvml(1, fail=True)).read() == []


def _reading(gpus: tuple[GpuReading, ...]) -> SystemReading:
    return SystemReading(cpu_percent=42.5, memory_used_bytes=100, memory_total_bytes=400, disk_used_bytes=7,
                         disk_total_bytes=70, collected_at=T0, gpus=gpus)


def test_export_sets_gauges_and_drops_vanished_gpus() -> None:
    system.export(_reading((GPU,)))
    assert REGISTRY.get_sample_value("medai_system_cpu_percent") == 42.5
    assert REGISTRY.get_sample_value("medai_system_memory_used_bytes") == 100
    assert REGISTRY.get_sample_value("medai_system_disk_total_bytes") == 70
    assert REGISTRY.get_sample_value("medai_system_gpu_memory_used_bytes", {"gpu": "0"}) == 3 * 1024**3
    system.export(_reading(()))
    assert REGISTRY.get_sample_value("medai_system_gpu_memory_used_bytes", {"gpu": "0"}) is None


def test_mapper_keeps_every_field() -> None:
    message = mapper.system_metrics(_reading((GPU,)))
    assert (message.cpu_percent, message.memory_used_bytes, message.memory_total_bytes) == (42.5, 100, 400)
    assert (message.disk_used_bytes, message.disk_total_bytes) == (7, 70)
    assert message.collected_at.ToDatetime(tzinfo=UTC) == T0
    [gpu] = message.gpus
    assert (gpu.index, gpu.name, gpu.utilization_percent, gpu.memory_used_bytes, gpu.memory_total_bytes,
            gpu.temperature_celsius) == (0, "test-gpu", 12.0, 3 * 1024**3, 8 * 1024**3, 55.0)
