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

class PublishJobUpdate(_message.Message):
    __slots__ = ("job", "resume_token", "heartbeat")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    job: _resources_pb2.PublishJob
    resume_token: str
    heartbeat: bool
    def __init__(self, job: _Optional[_Union[_resources_pb2.PublishJob, _Mapping]] = ..., resume_token: _Optional[str] = ..., heartbeat: _Optional[bool] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("name", "category", "title", "message", "create_time", "read", "agent", "version", "publish_job", "error", "changed_sections", "notice", "start_time", "end_time")
    class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CATEGORY_UNSPECIFIED: _ClassVar[Notification.Category]
        CATEGORY_SYSTEM: _ClassVar[Notification.Category]
        CATEGORY_MAINTENANCE: _ClassVar[Notification.Category]
    CATEGORY_UNSPECIFIED: Notification.Category
    CATEGORY_SYSTEM: Notification.Category
    CATEGORY_MAINTENANCE: Notification.Category
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_JOB_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHANGED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    category: Notification.Category
    title: str
    message: str
    create_time: _timestamp_pb2.Timestamp
    read: bool
    agent: str
    version: str
    publish_job: str
    error: _resources_pb2.PublishError
    changed_sections: _containers.RepeatedScalarFieldContainer[str]
    notice: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., category: _Optional[_Union[Notification.Category, str]] = ..., title: _Optional[str] = ..., message: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read: _Optional[bool] = ..., agent: _Optional[str] = ..., version: _Optional[str] = ..., publish_job: _Optional[str] = ..., error: _Optional[_Union[_resources_pb2.PublishError, _Mapping]] = ..., changed_sections: _Optional[_Iterable[str]] = ..., notice: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MaintenanceNotice(_message.Message):
    __slots__ = ("name", "title", "message", "start_time", "end_time", "create_time", "creator")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    title: str
    message: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    creator: str
    def __init__(self, name: _Optional[str] = ..., title: _Optional[str] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creator: _Optional[str] = ...) -> None: ...
