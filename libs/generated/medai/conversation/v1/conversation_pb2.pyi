from medai.generation.v1 import generation_pb2 as _generation_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatRequest(_message.Message):
    __slots__ = ("request_id", "model_id", "session_id", "owner", "message", "system_prompt", "parameters")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_id: str
    session_id: str
    owner: str
    message: str
    system_prompt: str
    parameters: _generation_pb2.GenerationParameters
    def __init__(self, request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., session_id: _Optional[str] = ..., owner: _Optional[str] = ..., message: _Optional[str] = ..., system_prompt: _Optional[str] = ..., parameters: _Optional[_Union[_generation_pb2.GenerationParameters, _Mapping]] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("session_id", "reply", "turns")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    reply: _generation_pb2.GenerateResponse
    turns: int
    def __init__(self, session_id: _Optional[str] = ..., reply: _Optional[_Union[_generation_pb2.GenerateResponse, _Mapping]] = ..., turns: _Optional[int] = ...) -> None: ...

class ChatChunk(_message.Message):
    __slots__ = ("session_id", "chunk")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    chunk: _generation_pb2.GenerateChunk
    def __init__(self, session_id: _Optional[str] = ..., chunk: _Optional[_Union[_generation_pb2.GenerateChunk, _Mapping]] = ...) -> None: ...

class DeleteSessionRequest(_message.Message):
    __slots__ = ("session_id", "owner")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    owner: str
    def __init__(self, session_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class DeleteSessionResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...
