from medai.common.v1 import inference_pb2 as _inference_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
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
