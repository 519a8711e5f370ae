import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from speako.config.v1 import resources_pb2 as _resources_pb2
from speako.notifier.v1 import resources_pb2 as _resources_pb2_1
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPublishJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPublishJobsRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "states", "create_time_start", "create_time_end")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_START_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_END_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[_resources_pb2.PublishJob.State]
    create_time_start: _timestamp_pb2.Timestamp
    create_time_end: _timestamp_pb2.Timestamp
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_resources_pb2.PublishJob.State, str]]] = ..., create_time_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPublishJobsResponse(_message.Message):
    __slots__ = ("publish_jobs", "next_page_token")
    PUBLISH_JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    publish_jobs: _containers.RepeatedCompositeFieldContainer[_resources_pb2.PublishJob]
    next_page_token: str
    def __init__(self, publish_jobs: _Optional[_Iterable[_Union[_resources_pb2.PublishJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchPublishJobRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchPublishJobsRequest(_message.Message):
    __slots__ = ("parent", "resume_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RESUME_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    resume_token: str
    def __init__(self, parent: _Optional[str] = ..., resume_token: _Optional[str] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("parent", "category", "unread_only", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UNREAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    category: _resources_pb2_1.Notification.Category
    unread_only: bool
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., category: _Optional[_Union[_resources_pb2_1.Notification.Category, str]] = ..., unread_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListNotificationsResponse(_message.Message):
    __slots__ = ("notifications", "next_page_token")
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    notifications: _containers.RepeatedCompositeFieldContainer[_resources_pb2_1.Notification]
    next_page_token: str
    def __init__(self, notifications: _Optional[_Iterable[_Union[_resources_pb2_1.Notification, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarkNotificationReadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchNotificationsRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class CreateMaintenanceNoticeRequest(_message.Message):
    __slots__ = ("notice", "request_id")
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    notice: _resources_pb2_1.MaintenanceNotice
    request_id: str
    def __init__(self, notice: _Optional[_Union[_resources_pb2_1.MaintenanceNotice, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...
