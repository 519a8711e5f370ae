import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from speako.config.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentStatus(_message.Message):
    __slots__ = ("name", "state", "live_version", "phone_numbers", "active_calls", "active_calls_by_version", "update_time")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[AgentStatus.State]
        STATE_DRAFT: _ClassVar[AgentStatus.State]
        STATE_ACTIVE: _ClassVar[AgentStatus.State]
        STATE_INACTIVE: _ClassVar[AgentStatus.State]
    STATE_UNSPECIFIED: AgentStatus.State
    STATE_DRAFT: AgentStatus.State
    STATE_ACTIVE: AgentStatus.State
    STATE_INACTIVE: AgentStatus.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CALLS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CALLS_BY_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: AgentStatus.State
    live_version: str
    phone_numbers: _containers.RepeatedScalarFieldContainer[str]
    active_calls: int
    active_calls_by_version: _containers.RepeatedCompositeFieldContainer[VersionCalls]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[AgentStatus.State, str]] = ..., live_version: _Optional[str] = ..., phone_numbers: _Optional[_Iterable[str]] = ..., active_calls: _Optional[int] = ..., active_calls_by_version: _Optional[_Iterable[_Union[VersionCalls, _Mapping]]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VersionCalls(_message.Message):
    __slots__ = ("version", "active_calls")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CALLS_FIELD_NUMBER: _ClassVar[int]
    version: str
    active_calls: int
    def __init__(self, version: _Optional[str] = ..., active_calls: _Optional[int] = ...) -> None: ...

class Call(_message.Message):
    __slots__ = ("name", "agent", "version", "bundle_sha256", "start_time", "end_time", "state", "called_number", "caller_number")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Call.State]
        STATE_ACTIVE: _ClassVar[Call.State]
        STATE_ENDED: _ClassVar[Call.State]
    STATE_UNSPECIFIED: Call.State
    STATE_ACTIVE: Call.State
    STATE_ENDED: Call.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CALLED_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CALLER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    agent: str
    version: str
    bundle_sha256: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    state: Call.State
    called_number: str
    caller_number: str
    def __init__(self, name: _Optional[str] = ..., agent: _Optional[str] = ..., version: _Optional[str] = ..., bundle_sha256: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[Call.State, str]] = ..., called_number: _Optional[str] = ..., caller_number: _Optional[str] = ...) -> None: ...

class Bundle(_message.Message):
    __slots__ = ("agent", "version", "content_sha256", "config")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    agent: str
    version: str
    content_sha256: str
    config: _resources_pb2.AgentConfig
    def __init__(self, agent: _Optional[str] = ..., version: _Optional[str] = ..., content_sha256: _Optional[str] = ..., config: _Optional[_Union[_resources_pb2.AgentConfig, _Mapping]] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("agent", "version", "bundle_sha256", "deploy_time", "live_version")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SHA256_FIELD_NUMBER: _ClassVar[int]
    DEPLOY_TIME_FIELD_NUMBER: _ClassVar[int]
    LIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent: str
    version: str
    bundle_sha256: str
    deploy_time: _timestamp_pb2.Timestamp
    live_version: str
    def __init__(self, agent: _Optional[str] = ..., version: _Optional[str] = ..., bundle_sha256: _Optional[str] = ..., deploy_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., live_version: _Optional[str] = ...) -> None: ...
