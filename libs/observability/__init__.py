"""Prometheus, Alertmanager and Grafana files of the mesh; the alert rules and dashboards are code here.

`python -m libs.observability` writes prometheus/rules/*.yml and grafana/dashboards/*.json from
`alerts.py` and `dashboards.py` (`--check` fails when they drifted; a test runs it).
"""
