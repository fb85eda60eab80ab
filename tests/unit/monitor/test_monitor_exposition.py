"""Relabelling and merging of several services' expositions into one valid text."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.monitor.core import exposition


def _service_text(requests: int, extra_label: bool = False) -> str:
    registry = CollectorRegistry()
    counter = Counter("medai_rpc_requests_total", "calls", ["method"], registry=registry)
    counter.labels("/a").inc(requests)
    Histogram("medai_rpc_duration_seconds", "time", registry=registry, buckets=(0.1, 1.0)).observe(0.5)
    if extra_label:
        Gauge("medai_tagged", "has its own service label", ["service"], registry=registry).labels("inner").set(1)
    return generate_latest(registry).decode()


def _merged(texts: dict[str, str]) -> str:
    families = {name: exposition.parse(text, name) for name, text in texts.items()}
    return exposition.render(exposition.merge(families)).decode()


def test_families_are_merged_and_every_sample_is_labelled() -> None:
    text = _merged({"gateway": _service_text(3), "compliance": _service_text(5)})
    assert text.count("# TYPE medai_rpc_requests_total counter") == 1
    assert text.count("# HELP medai_rpc_duration_seconds ") == 1
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {s.labels["service"]: s.value for s in families["medai_rpc_requests"].samples}
    assert requests == {"gateway": 3.0, "compliance": 5.0}
    buckets = [s for s in families["medai_rpc_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert len(buckets) == 6
    assert all(s.labels.get("service") for family in families.values() for s in family.samples)


def test_a_targets_own_service_label_is_kept_as_exported_service() -> None:
    text = _merged({"embedding": _service_text(1, extra_label=True)})
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "medai_tagged"]
    assert family.samples[0].labels == {"service": "embedding", "exported_service": "inner"}


def test_a_family_whose_type_clashes_is_dropped_not_repeated() -> None:
    gauge_text = "# HELP medai_rpc_in_flight x\n# TYPE medai_rpc_in_flight gauge\nmedai_rpc_in_flight 2\n"
    counter_text = "# HELP medai_rpc_in_flight y\n# TYPE medai_rpc_in_flight counter\nmedai_rpc_in_flight 1\n"
    text = _merged({"a": gauge_text, "b": counter_text})
    assert text.count("# TYPE") == 1
    [family] = text_string_to_metric_families(text)
    assert [(s.labels["service"], s.value) for s in family.samples] == [("a", 2.0)]


def test_label_values_are_escaped() -> None:
    raw = '# TYPE medai_q gauge\nmedai_q{path="a\\"b\\\\c\\nd"} 1\n'
    [family] = text_string_to_metric_families(_merged({"x": raw}))
    assert family.samples[0].labels["path"] == 'a"b\\c\nd'


def test_invalid_text_is_rejected() -> None:
    with pytest.raises(ValueError):
        exposition.parse("medai_x{unterminated 1\n", "x")
