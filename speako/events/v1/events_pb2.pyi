import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from speako.config.v1 import resources_pb2 as _resources_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishRequested(_message.Message):
    __slots__ = ("job", "content_sha256")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    job: _resources_pb2.PublishJob
    content_sha256: str
    def __init__(self, job: _Optional[_Union[_resources_pb2.PublishJob, _Mapping]] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class JobStateChanged(_message.Message):
    __slots__ = ("job", "sequence", "event_time")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    job: _resources_pb2.PublishJob
    sequence: int
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, job: _Optional[_Union[_resources_pb2.PublishJob, _Mapping]] = ..., sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VersionLive(_message.Message):
    __slots__ = ("agent", "version", "content_sha256", "previous_version", "live_time")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    LIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    agent: str
    version: str
    content_sha256: str
    previous_version: str
    live_time: _timestamp_pb2.Timestamp
    def __init__(self, agent: _Optional[str] = ..., version: _Optional[str] = ..., content_sha256: _Optional[str] = ..., previous_version: _Optional[str] = ..., live_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgentActivated(_message.Message):
    __slots__ = ("agent", "live_version", "event_time")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    agent: str
    live_version: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, agent: _Optional[str] = ..., live_version: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AgentDeactivated(_message.Message):
    __slots__ = ("agent", "event_time")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    agent: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, agent: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
