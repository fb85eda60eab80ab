import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from medai.common.v1 import inference_pb2 as _inference_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProxyPredictRequest(_message.Message):
    __slots__ = ("caller", "request")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    caller: _inference_pb2.Caller
    request: _inference_pb2.PredictRequest
    def __init__(self, caller: _Optional[_Union[_inference_pb2.Caller, _Mapping]] = ..., request: _Optional[_Union[_inference_pb2.PredictRequest, _Mapping]] = ...) -> None: ...

class ProxyDeidentifyRequest(_message.Message):
    __slots__ = ("caller", "request")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    caller: _inference_pb2.Caller
    request: _inference_pb2.DeidentifyRequest
    def __init__(self, caller: _Optional[_Union[_inference_pb2.Caller, _Mapping]] = ..., request: _Optional[_Union[_inference_pb2.DeidentifyRequest, _Mapping]] = ...) -> None: ...

class ProxyDeleteSessionRequest(_message.Message):
    __slots__ = ("caller", "request")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    caller: _inference_pb2.Caller
    request: _inference_pb2.DeleteSessionRequest
    def __init__(self, caller: _Optional[_Union[_inference_pb2.Caller, _Mapping]] = ..., request: _Optional[_Union[_inference_pb2.DeleteSessionRequest, _Mapping]] = ...) -> None: ...

class ProxyListAuditRecordsRequest(_message.Message):
    __slots__ = ("caller", "request")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    caller: _inference_pb2.Caller
    request: _inference_pb2.ListAuditRecordsRequest
    def __init__(self, caller: _Optional[_Union[_inference_pb2.Caller, _Mapping]] = ..., request: _Optional[_Union[_inference_pb2.ListAuditRecordsRequest, _Mapping]] = ...) -> None: ...

class ProxyVerifyAuditRequest(_message.Message):
    __slots__ = ("caller", "request")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    caller: _inference_pb2.Caller
    request: _inference_pb2.VerifyAuditRequest
    def __init__(self, caller: _Optional[_Union[_inference_pb2.Caller, _Mapping]] = ..., request: _Optional[_Union[_inference_pb2.VerifyAuditRequest, _Mapping]] = ...) -> None: ...

class Refusal(_message.Message):
    __slots__ = ("request_id", "principal_id", "claimed_key_id", "role", "client_address", "action", "model_id", "status_code", "refused_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    REFUSED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    principal_id: str
    claimed_key_id: str
    role: str
    client_address: str
    action: str
    model_id: str
    status_code: str
    refused_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., principal_id: _Optional[str] = ..., claimed_key_id: _Optional[str] = ..., role: _Optional[str] = ..., client_address: _Optional[str] = ..., action: _Optional[str] = ..., model_id: _Optional[str] = ..., status_code: _Optional[str] = ..., refused_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordRefusalsRequest(_message.Message):
    __slots__ = ("refusals",)
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    refusals: _containers.RepeatedCompositeFieldContainer[Refusal]
    def __init__(self, refusals: _Optional[_Iterable[_Union[Refusal, _Mapping]]] = ...) -> None: ...

class RecordRefusalsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...
