"""The mesh's Prometheus text: every service's families, each sample labelled with its service.

Families of the same name from several services become one family (Prometheus rejects a
repeated HELP/TYPE). A label `service` that a target set itself is kept as
`exported_service`, as Prometheus does on a label clash.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

SERVICE_LABEL = "service"
CLASHING_LABEL_PREFIX = "exported_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def parse(text: str, service: str) -> list[Metric]:
    """All families of one service's exposition, labelled with it; ValueError if the text is not valid."""
    return [relabel(family, service) for family in text_string_to_metric_families(text)]


def relabel(family: Metric, service: str) -> Metric:
    """A copy of family whose samples carry service=<service>."""
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    for sample in family.samples:
        labels = dict(sample.labels)
        if SERVICE_LABEL in labels:
            labels[CLASHING_LABEL_PREFIX + SERVICE_LABEL] = labels.pop(SERVICE_LABEL)
        labels[SERVICE_LABEL] = service
        copy.samples.append(sample._replace(labels=labels))
    return copy


def merge(families_by_service: Mapping[str, Iterable[Metric]]) -> list[Metric]:
    """One family per name holding every service's samples; the first HELP and TYPE win."""
    merged: dict[str, Metric] = {}
    for service, families in families_by_service.items():
        for family in families:
            kept = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            if kept.type != family.type:
                log.warning("dropping family %s of %s: type %s clashes with %s",
                            family.name, service, family.type, kept.type)
                continue
            kept.samples.extend(family.samples)
    return list(merged.values())


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: list[Metric]) -> bytes:
    """Prometheus text exposition (version 0.0.4) of the families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)
