"""The monitor: mesh health, system metrics, alerts and the mesh's Prometheus text."""
