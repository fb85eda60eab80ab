"""The OpenAPI 3.1 document of the mesh's HTTP/JSON API, generated from the protos (`make protos`).

Every route is a `google.api.http` annotation of a public service's method, as Envoy's transcoder serves
it: path parameters from the template, the body ("*": the request message less its path fields), query
parameters (GET, DELETE: the request's scalar fields), and JSON as the transcoder prints it (proto field
names, every primitive field, 64-bit integers as strings). Streams answer server-sent events of their
message; errors answer the mesh's status object, or OpenAI's error object on the OpenAI routes. Message,
field and method comments become descriptions.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

Json = dict[str, Any]
F = descriptor_pb2.FieldDescriptorProto

TITLE = "MedServe mesh API"
PUBLIC_SERVICES = ("medai.gateway.v1.Gateway", "medai.gateway.v1.OpenAI")
OPENAI_SERVICE = "medai.gateway.v1.OpenAI"
# Methods anyone may call (no API key); every other route needs `Authorization: Bearer <key>`.
PUBLIC_METHODS = frozenset({"GetHealth", "GetMetrics", "GetOpenApi", "GetDocs", "GetDocsAsset"})
# google.api.HttpBody answers: their content type, by method (any other: any type).
RAW_BODY_TYPES = {"GetMetrics": "text/plain", "GetOpenApi": "application/json", "GetDocs": "text/html"}
ERROR_STATUSES = {
    "400": "The request is invalid (the message names the field; it never echoes the request).",
    "401": "The API key is missing or unknown.",
    "403": "The API key may not do this.",
    "404": "No such model or route.",
    "429": "A rate limit or the mesh's capacity is reached: retry after the Retry-After header's seconds.",
    "503": "The model's worker or a store is unavailable: retry later.",
}
_SCALARS: dict[int, Json] = {
    F.TYPE_DOUBLE: {"type": "number"}, F.TYPE_FLOAT: {"type": "number"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"}, F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # 64-bit integers: JSON strings (the transcoder prints them so); numbers are accepted too.
    F.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_SINT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_SFIXED64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_UINT64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_FIXED64: {"type": ["string", "integer"], "format": "int64"},
    F.TYPE_BOOL: {"type": "boolean"}, F.TYPE_STRING: {"type": "string"},
    F.TYPE_BYTES: {"type": "string", "format": "byte"},
}
# Well-known types as their JSON forms.
_WELL_KNOWN: dict[str, Json] = {
    ".google.protobuf.Value": {"description": "Any JSON value."},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.ListValue": {"type": "array"},
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string"},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.api.HttpBody": {"type": "string"},
}
STATUS_SCHEMA: Json = {
    "type": "object", "description": "An error: a gRPC status code, a message naming the field at fault.",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "array"}},
}
OPENAI_ERROR_SCHEMA: Json = {
    "type": "object", "description": "An error in OpenAI's shape (the official clients raise the matching class).",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]},
    }}},
}
_PATH_PARAM = re.compile(r"{([^}=]+)(=[^}]*)?}")


class _Types:
    """Message and enum descriptors of a descriptor set by full name, with their comments."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        self.services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
        for file in files.file:
            comments = _comments(file)
            prefix = f".{file.package}" if file.package else ""
            for index, message in enumerate(file.message_type):
                self._add_message(message, prefix, (4, index), comments)
            for enum in file.enum_type:
                self.enums[f"{prefix}.{enum.name}"] = enum
            for index, service in enumerate(file.service):
                name = f"{file.package}.{service.name}"
                self.services[name] = service
                for method_index, method in enumerate(service.method):
                    self.comments[f"{name}.{method.name}"] = comments.get((6, index, 2, method_index), "")

    def _add_message(self, message: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...],
                     comments: dict[tuple[int, ...], str]) -> None:
        name = f"{prefix}.{message.name}"
        self.messages[name] = message
        self.comments[name] = comments.get(path, "")
        for index, field in enumerate(message.field):
            self.comments[f"{name}.{field.name}"] = comments.get((*path, 2, index), "")
        for index, nested in enumerate(message.nested_type):
            self._add_message(nested, name, (*path, 3, index), comments)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum


def _comments(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    found = {}
    for location in file.source_code_info.location:
        text = (location.leading_comments or location.trailing_comments).strip()
        if text:
            found[tuple(location.path)] = " ".join(line.strip() for line in text.splitlines())
    return found


def _schema_name(full_name: str) -> str:
    return full_name.lstrip(".").replace(".", "_")


class _Builder:
    def __init__(self, types: _Types) -> None:
        self._types = types
        self.schemas: dict[str, Json] = {}

    def ref(self, full_name: str) -> Json:
        """A reference to the message's schema (built once), or a well-known type's JSON form."""
        if full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full_name])
        name = _schema_name(full_name)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder first: messages may refer to themselves
            self.schemas[name] = self.message_schema(full_name)
        return {"$ref": f"#/components/schemas/{name}"}

    def message_schema(self, full_name: str, without: frozenset[str] = frozenset()) -> Json:
        message = self._types.messages[full_name]
        properties = {field.name: self.field_schema(full_name, field) for field in message.field
                      if field.name not in without}
        schema: Json = {"type": "object", "properties": properties}
        if self._types.comments.get(full_name):
            schema["description"] = self._types.comments[full_name]
        return schema

    def field_schema(self, owner: str, field: F) -> Json:
        schema = self._value_schema(field)
        if field.label == F.LABEL_REPEATED and not self._is_map(field):
            schema = {"type": "array", "items": schema}
        description = self._types.comments.get(f"{owner}.{field.name}")
        return {**schema, "description": description} if description and "$ref" not in schema else schema

    def _is_map(self, field: F) -> bool:
        entry = self._types.messages.get(field.type_name) if field.type == F.TYPE_MESSAGE else None
        return bool(entry and entry.options.map_entry)

    def _value_schema(self, field: F) -> Json:
        if field.type == F.TYPE_ENUM:
            return {"type": "string", "enum": [value.name for value in self._types.enums[field.type_name].value]}
        if field.type != F.TYPE_MESSAGE:
            return dict(_SCALARS[field.type])
        if self._is_map(field):
            value = self._types.messages[field.type_name].field[1]
            return {"type": "object", "additionalProperties": self._value_schema(value)}
        return self.ref(field.type_name)


def build_document(files: descriptor_pb2.FileDescriptorSet, version: str = "0.1.0") -> Json:
    """The OpenAPI 3.1 document of the public services' HTTP routes."""
    types = _Types(files)
    builder = _Builder(types)
    paths: dict[str, Json] = {}
    for service_name in PUBLIC_SERVICES:
        for method, rule in _http_methods(types, service_name):
            verb, template = _pattern(rule)
            operation = _operation(builder, types, service_name, method, rule, template)
            paths.setdefault(_openapi_path(template), {})[verb] = operation
    builder.schemas["Status"] = STATUS_SCHEMA
    builder.schemas["OpenAIErrorResponse"] = OPENAI_ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": version,
                 "description": "De-identified model serving: every input passes PHI redaction and audit before a "
                                "model sees it. JSON over HTTP (Envoy transcodes it to gRPC); the same methods over "
                                "gRPC on the same port."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API key: `medai keys create`."}},
        },
    }


def _http_methods(types: _Types, service_name: str) -> Iterator[tuple[descriptor_pb2.MethodDescriptorProto,
                                                                       http_pb2.HttpRule]]:
    for method in types.services[service_name].method:
        if method.options.HasExtension(annotations_pb2.http):
            yield method, method.options.Extensions[annotations_pb2.http]


def _pattern(rule: http_pb2.HttpRule) -> tuple[str, str]:
    verb = rule.WhichOneof("pattern")
    return verb, getattr(rule, verb)


def _openapi_path(template: str) -> str:
    return _PATH_PARAM.sub(lambda match: "{" + match.group(1) + "}", template)


def _operation(builder: _Builder, types: _Types, service_name: str, method: descriptor_pb2.MethodDescriptorProto,
               rule: http_pb2.HttpRule, template: str) -> Json:
    request = method.input_type
    path_fields = frozenset(match.group(1) for match in _PATH_PARAM.finditer(template))
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in sorted(path_fields)]
    operation: Json = {"operationId": method.name, "tags": [_tag(service_name)],
                       "summary": types.comments.get(f"{service_name}.{method.name}") or method.name}
    if rule.body == "*":
        schema = builder.message_schema(request, path_fields) if path_fields else builder.ref(request)
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    elif request not in _WELL_KNOWN:
        parameters += _query_parameters(builder, types, request, path_fields)
    if parameters:
        operation["parameters"] = parameters
    if method.name in PUBLIC_METHODS:
        operation["security"] = []
    operation["responses"] = _responses(builder, service_name, method)
    return operation


def _query_parameters(builder: _Builder, types: _Types, request: str, path_fields: frozenset[str]) -> list[Json]:
    parameters = []
    for field in types.messages[request].field:
        if field.name in path_fields or field.type == F.TYPE_MESSAGE:
            continue
        schema = builder.field_schema(request, field)
        description = schema.pop("description", None)
        parameter: Json = {"name": field.name, "in": "query", "required": False, "schema": schema}
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _responses(builder: _Builder, service_name: str, method: descriptor_pb2.MethodDescriptorProto) -> Json:
    output = method.output_type
    if method.server_streaming:
        ok = {"description": f"Server-sent events, each `data:` a {_schema_name(output)} (JSON); the last carries "
                             "finish_reason (complete) or error (cut short).",
              "content": {"text/event-stream": {"schema": {"type": "string"},
                                                "x-event-schema": builder.ref(output)}}}
    elif output == ".google.api.HttpBody":
        ok = {"description": "The document.",
              "content": {RAW_BODY_TYPES.get(method.name, "*/*"): {"schema": {"type": "string"}}}}
    else:
        ok = {"description": "OK", "content": {"application/json": {"schema": builder.ref(output)}}}
    error = {"$ref": "#/components/schemas/" + ("OpenAIErrorResponse" if service_name == OPENAI_SERVICE
                                                else "Status")}
    responses: Json = {"200": ok}
    for status, description in ERROR_STATUSES.items():
        responses[status] = {"description": description, "content": {"application/json": {"schema": error}}}
    responses["429"]["headers"] = {"Retry-After": {"description": "Seconds to wait.",
                                                   "schema": {"type": "integer", "minimum": 1}}}
    responses["default"] = {"description": "Any other error.", "content": {"application/json": {"schema": error}}}
    return responses


def _tag(service_name: str) -> str:
    return "OpenAI-compatible" if service_name == OPENAI_SERVICE else "MedServe"
