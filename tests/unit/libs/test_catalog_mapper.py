"""The model catalogue's domain types and their one pb <-> domain mapper."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.catalog import EMBEDDING, SERVING, UNAVAILABLE, ModelCard, ModelHealthReport, ModelLimits, SingleModelCatalog
from libs.errors import ModelNotFound
from libs.rpc.catalog import model_card_from_pb, model_card_to_pb, model_health_from_pb, model_health_to_pb
from medai.common.v1 import models_pb2


def test_model_info_round_trips():
    info = ModelCard(model_id="m", model_type="embedding", model_version="v", status="SERVING",
                     parameter_count=22_000_000, embedding_dimension=384, limits=ModelLimits(max_batch_size=32),
                     loaded_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    pb = model_card_to_pb(info)
    assert isinstance(pb, models_pb2.ModelInfo) and pb.limits.max_batch_size == 32
    assert model_card_from_pb(pb) == info


def test_unset_timestamps_stay_unset():
    pb = model_card_to_pb(ModelCard(model_id="m", model_type=EMBEDDING))
    assert not pb.HasField("loaded_at") and model_card_from_pb(pb).loaded_at is None
    health = model_health_to_pb(ModelHealthReport("m", UNAVAILABLE))
    assert not health.HasField("checked_at") and model_health_from_pb(health) == ModelHealthReport("m", UNAVAILABLE)


def test_model_health_round_trips():
    report = ModelHealthReport("m", SERVING, requests_running=2, requests_waiting=1,
                               checked_at=datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC))
    pb = model_health_to_pb(report)
    assert (pb.status, pb.requests_running, pb.requests_waiting) == ("SERVING", 2, 1)
    assert model_health_from_pb(pb) == report


class _OneModel(SingleModelCatalog):
    model_type = EMBEDDING

    @property
    def model_id(self) -> str:
        return "mini"

    def describe(self) -> ModelCard:
        return ModelCard(self.model_id, self.model_type, status=SERVING)

    def health_report(self) -> ModelHealthReport:
        return ModelHealthReport(self.model_id, SERVING)


def test_single_model_catalog_answers_for_its_model_only():
    catalog = _OneModel()
    assert [card.model_id for card in catalog.list_models()] == ["mini"]
    assert catalog.list_models(EMBEDDING) == catalog.list_models() and catalog.list_models("conversation") == []
    assert catalog.model_info("").model_id == catalog.model_info("mini").model_id == "mini"
    assert catalog.model_health("mini").status == SERVING
    for call in (catalog.model_info, catalog.model_health, catalog.check_model):
        with pytest.raises(ModelNotFound):
            call("other")
