"""The monitor's own Prometheus metrics (on the process registry, served on its metrics port).

`target` names a watched or scraped service; the mesh text adds `service` to every series,
so the monitor's own series keep that label free.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge

SCRAPE_ERRORS = Counter(
    "medai_monitor_scrape_errors_total", "Metrics scrapes of a service that failed (skipped)", ["target"]
)
MESH_SERVICE_SERVING = Gauge("medai_mesh_service_serving", "1 while a watched service reports SERVING", ["target"])
ALERTS_ACTIVE = Gauge("medai_alerts_active", "Alerts active now, by rule", ["rule"])

SYSTEM_CPU_PERCENT = Gauge("medai_system_cpu_percent", "Host CPU utilisation in percent")
SYSTEM_MEMORY_USED = Gauge("medai_system_memory_used_bytes", "Host memory in use (total - available)")
SYSTEM_MEMORY_TOTAL = Gauge("medai_system_memory_total_bytes", "Host memory in all")
SYSTEM_DISK_USED = Gauge("medai_system_disk_used_bytes", "Used bytes of the data directory's disk")
SYSTEM_DISK_TOTAL = Gauge("medai_system_disk_total_bytes", "Size of the data directory's disk")
GPU_UTILIZATION = Gauge("medai_system_gpu_utilization_percent", "GPU utilisation in percent", ["gpu"])
GPU_MEMORY_USED = Gauge("medai_system_gpu_memory_used_bytes", "GPU memory in use", ["gpu"])
GPU_MEMORY_TOTAL = Gauge("medai_system_gpu_memory_total_bytes", "GPU memory in all", ["gpu"])
GPU_TEMPERATURE = Gauge("medai_system_gpu_temperature_celsius", "GPU temperature", ["gpu"])
