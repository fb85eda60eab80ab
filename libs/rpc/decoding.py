"""Request decoding that never fails the call with INTERNAL.

gRPC decodes a request before any handler runs; a message it cannot parse (a string field with
invalid UTF-8, e.g. a JSON path `/models/%ff/info` transcoded by Envoy) would end the call with
INTERNAL and the parser's text. `tolerant` decodes the same way but hands such a request to the
handler as `Undecodable`, naming the offending field, so the call answers INVALID_ARGUMENT.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

Deserializer = Callable[[bytes], Any]


@dataclass(frozen=True)
class Undecodable:
    """A request that could not be decoded; `field` is the dotted path of the culprit, if found."""

    field: str
    reason: str


def tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, answering `Undecodable` instead of raising on malformed input."""
    if deserializer is None:
        return None
    descriptor: Descriptor | None = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, UnicodeError):
            if descriptor is None:
                return Undecodable("request", "is not a valid message")
            field = invalid_utf8_field(descriptor, data)
            if field is not None:
                return Undecodable(field, "is not valid UTF-8 text")
            return Undecodable("request", "is not a valid message")

    return decode


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return value, position
        shift += 7


_FIXED_WIDTH = {1: 8, 5: 4}


def invalid_utf8_field(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """The dotted path of the first string field (at any depth) whose bytes are not UTF-8, else None."""
    position = 0
    try:
        while position < len(data):
            tag, position = _varint(data, position)
            number, wire_type = tag >> 3, tag & 7
            if wire_type == 0:
                _, position = _varint(data, position)
            elif wire_type in _FIXED_WIDTH:
                position += _FIXED_WIDTH[wire_type]
            elif wire_type == 2:
                length, position = _varint(data, position)
                chunk, position = data[position:position + length], position + length
                found = _check_length_delimited(descriptor.fields_by_number.get(number), chunk, prefix)
                if found is not None:
                    return found
            else:
                return None
    except ValueError:
        return None
    return None


def _check_length_delimited(field: FieldDescriptor | None, chunk: bytes, prefix: str) -> str | None:
    if field is None:
        return None
    path = f"{prefix}{field.name}"
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return path
        return None
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return invalid_utf8_field(field.message_type, chunk, f"{path}.")
    return None
