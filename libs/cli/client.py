"""`medai predict` and `medai models`: call the mesh's public gRPC API through the edge.

The address and key come from `MEDAI_*` (`ClientSettings`); without a key, the local development
key `make run` wrote is used. Streams print each text delta as it arrives.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Annotated

import grpc
import typer
from google.protobuf import json_format

from libs.config import ClientSettings
from libs.launcher.devkey import DEV_KEY_FILE
from medai.common.v1 import inference_pb2, models_pb2
from medai.gateway.v1 import gateway_pb2_grpc

TLS_PREFIX = "https://"
MODEL_COLUMNS = ("model_id", "model_type", "model_version", "status", "device")


def _api_key(settings: ClientSettings) -> str:
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    path = settings.app.state_dir / DEV_KEY_FILE
    if not path.exists():
        raise typer.BadParameter(f"no API key: set MEDAI_API_KEY (or run `make run` once to create {path})")
    return path.read_text().strip()


@contextlib.contextmanager
def _gateway(settings: ClientSettings) -> Iterator[tuple[gateway_pb2_grpc.GatewayStub, tuple]]:
    """(stub, call metadata); a failed call prints its status and exits 1."""
    metadata = (("authorization", f"Bearer {_api_key(settings)}"),)
    address = settings.address
    roots = settings.ca_file.read_bytes() if settings.ca_file else None  # None: the usual public roots
    channel = (grpc.secure_channel(address.removeprefix(TLS_PREFIX), grpc.ssl_channel_credentials(roots))
               if address.startswith(TLS_PREFIX) else grpc.insecure_channel(address))
    try:
        with channel:
            yield gateway_pb2_grpc.GatewayStub(channel), metadata
    except grpc.RpcError as error:
        hint = dict(error.trailing_metadata() or ()).get("retry-after")
        retry = f" (retry after {hint} s)" if hint else ""
        typer.echo(f"error: {error.code().name}: {error.details()}{retry}", err=True)
        raise typer.Exit(1) from None


def _request(model_id: str, text: str, max_new_tokens: int | None, temperature: float | None,
             seed: int | None, session_id: str) -> inference_pb2.PredictRequest:
    request = inference_pb2.PredictRequest(model_id=model_id, session_id=session_id)
    request.inputs.string_value = sys.stdin.read() if text == "-" else text
    for name, value in (("max_new_tokens", max_new_tokens), ("temperature", temperature), ("seed", seed)):
        if value is not None:
            setattr(request.parameters, name, value)
    return request


def _as_json(message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=None)


def predict(
    model_id: Annotated[str, typer.Argument(help="The model to call (see `medai models`)")],
    text: Annotated[str, typer.Argument(help="The input text; '-' reads it from stdin")],
    stream: Annotated[bool, typer.Option("--stream", help="Print tokens as they are generated")] = False,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens to generate at most")] = None,
    temperature: Annotated[float | None, typer.Option(help="0 = greedy (cacheable)")] = None,
    seed: Annotated[int | None, typer.Option(help="Makes sampling reproducible")] = None,
    session_id: Annotated[str, typer.Option(help="Conversation models: the session to continue")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole answer (each event) as JSON")] = False,
) -> None:
    """Send one input to a model and print its answer (text, or a vector as JSON for embeddings)."""
    settings = ClientSettings()
    request = _request(model_id, text, max_new_tokens, temperature, seed, session_id)
    with _gateway(settings) as (stub, metadata):
        if not stream:
            answer = stub.Predict(request, metadata=metadata, timeout=settings.timeout_seconds)
            outputs = answer.outputs
            typer.echo(_as_json(answer) if as_json or not outputs.HasField("string_value")
                       else outputs.string_value)
            return
        last = None
        for chunk in stub.PredictStream(request, metadata=metadata, timeout=settings.timeout_seconds):
            if as_json:
                typer.echo(_as_json(chunk))
            else:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            last = chunk
        if not as_json:
            sys.stdout.write("\n")
            if last is not None and last.HasField("finish_reason"):
                typer.echo(f"[{last.finish_reason}, {last.usage.generated_tokens} tokens]", err=True)


def models(
    model_type: Annotated[str, typer.Option("--type", help="Only this type: text-generation, embedding, "
                                                           "conversation")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON")] = False,
) -> None:
    """List the models this key may use."""
    settings = ClientSettings()
    with _gateway(settings) as (stub, metadata):
        listed = stub.ListModels(models_pb2.ListModelsRequest(model_type=model_type), metadata=metadata,
                                 timeout=settings.timeout_seconds)
    if as_json:
        typer.echo(_as_json(listed))
        return
    rows = [MODEL_COLUMNS, *(tuple(str(getattr(model, name)) for name in MODEL_COLUMNS) for model in listed.models)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(MODEL_COLUMNS))]
    for row in rows:
        typer.echo("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
