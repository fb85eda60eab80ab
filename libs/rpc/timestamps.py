"""google.protobuf.Timestamp <-> datetime, for every mapper (None stands for an unset field)."""
from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


def timestamp_to_pb(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def timestamp_from_pb(message: Message, field: str) -> datetime | None:
    """The UTC time in `message.<field>`, or None where the field is unset."""
    return getattr(message, field).ToDatetime(tzinfo=UTC) if message.HasField(field) else None
