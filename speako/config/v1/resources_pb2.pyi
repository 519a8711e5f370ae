import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Agent(_message.Message):
    __slots__ = ("name", "display_name", "create_time", "update_time", "latest_version_number")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    latest_version_number: int
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_version_number: _Optional[int] = ...) -> None: ...

class AgentConfig(_message.Message):
    __slots__ = ("greetings", "voice", "personality", "tools", "knowledge", "flow", "business_hours", "fallback_message", "pronunciations")
    class PronunciationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GREETINGS_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    KNOWLEDGE_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_HOURS_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PRONUNCIATIONS_FIELD_NUMBER: _ClassVar[int]
    greetings: Greetings
    voice: Voice
    personality: Personality
    tools: _containers.RepeatedCompositeFieldContainer[Tool]
    knowledge: Knowledge
    flow: Flow
    business_hours: BusinessHours
    fallback_message: str
    pronunciations: _containers.ScalarMap[str, str]
    def __init__(self, greetings: _Optional[_Union[Greetings, _Mapping]] = ..., voice: _Optional[_Union[Voice, _Mapping]] = ..., personality: _Optional[_Union[Personality, _Mapping]] = ..., tools: _Optional[_Iterable[_Union[Tool, _Mapping]]] = ..., knowledge: _Optional[_Union[Knowledge, _Mapping]] = ..., flow: _Optional[_Union[Flow, _Mapping]] = ..., business_hours: _Optional[_Union[BusinessHours, _Mapping]] = ..., fallback_message: _Optional[str] = ..., pronunciations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Greetings(_message.Message):
    __slots__ = ("opening_greeting", "after_hours_message", "returning_customer_greeting", "recording_consent")
    OPENING_GREETING_FIELD_NUMBER: _ClassVar[int]
    AFTER_HOURS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETURNING_CUSTOMER_GREETING_FIELD_NUMBER: _ClassVar[int]
    RECORDING_CONSENT_FIELD_NUMBER: _ClassVar[int]
    opening_greeting: str
    after_hours_message: str
    returning_customer_greeting: str
    recording_consent: str
    def __init__(self, opening_greeting: _Optional[str] = ..., after_hours_message: _Optional[str] = ..., returning_customer_greeting: _Optional[str] = ..., recording_consent: _Optional[str] = ...) -> None: ...

class Voice(_message.Message):
    __slots__ = ("voice_id", "primary_language", "additional_languages")
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    voice_id: str
    primary_language: str
    additional_languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, voice_id: _Optional[str] = ..., primary_language: _Optional[str] = ..., additional_languages: _Optional[_Iterable[str]] = ...) -> None: ...

class Personality(_message.Message):
    __slots__ = ("name", "tone", "prompt")
    class Tone(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TONE_UNSPECIFIED: _ClassVar[Personality.Tone]
        TONE_FRIENDLY: _ClassVar[Personality.Tone]
        TONE_PROFESSIONAL: _ClassVar[Personality.Tone]
        TONE_CASUAL: _ClassVar[Personality.Tone]
        TONE_EMPATHETIC: _ClassVar[Personality.Tone]
        TONE_ENERGETIC: _ClassVar[Personality.Tone]
    TONE_UNSPECIFIED: Personality.Tone
    TONE_FRIENDLY: Personality.Tone
    TONE_PROFESSIONAL: Personality.Tone
    TONE_CASUAL: Personality.Tone
    TONE_EMPATHETIC: Personality.Tone
    TONE_ENERGETIC: Personality.Tone
    NAME_FIELD_NUMBER: _ClassVar[int]
    TONE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    name: str
    tone: Personality.Tone
    prompt: str
    def __init__(self, name: _Optional[str] = ..., tone: _Optional[_Union[Personality.Tone, str]] = ..., prompt: _Optional[str] = ...) -> None: ...

class Tool(_message.Message):
    __slots__ = ("id", "type", "enabled", "transfer_number", "url", "description")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Tool.Type]
        TYPE_TRANSFER_CALL: _ClassVar[Tool.Type]
        TYPE_WEBHOOK: _ClassVar[Tool.Type]
        TYPE_BOOK_APPOINTMENT: _ClassVar[Tool.Type]
        TYPE_END_CALL: _ClassVar[Tool.Type]
    TYPE_UNSPECIFIED: Tool.Type
    TYPE_TRANSFER_CALL: Tool.Type
    TYPE_WEBHOOK: Tool.Type
    TYPE_BOOK_APPOINTMENT: Tool.Type
    TYPE_END_CALL: Tool.Type
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: Tool.Type
    enabled: bool
    transfer_number: str
    url: str
    description: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[Tool.Type, str]] = ..., enabled: _Optional[bool] = ..., transfer_number: _Optional[str] = ..., url: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Knowledge(_message.Message):
    __slots__ = ("faqs", "articles")
    FAQS_FIELD_NUMBER: _ClassVar[int]
    ARTICLES_FIELD_NUMBER: _ClassVar[int]
    faqs: _containers.RepeatedCompositeFieldContainer[Faq]
    articles: _containers.RepeatedCompositeFieldContainer[Article]
    def __init__(self, faqs: _Optional[_Iterable[_Union[Faq, _Mapping]]] = ..., articles: _Optional[_Iterable[_Union[Article, _Mapping]]] = ...) -> None: ...

class Faq(_message.Message):
    __slots__ = ("question", "answer")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    question: str
    answer: str
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...

class Article(_message.Message):
    __slots__ = ("title", "body")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("start_node_id", "nodes")
    START_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    start_node_id: str
    nodes: _containers.RepeatedCompositeFieldContainer[FlowNode]
    def __init__(self, start_node_id: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[FlowNode, _Mapping]]] = ...) -> None: ...

class FlowNode(_message.Message):
    __slots__ = ("id", "type", "prompt", "next_node_ids", "tool_id")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[FlowNode.Type]
        TYPE_START: _ClassVar[FlowNode.Type]
        TYPE_SAY: _ClassVar[FlowNode.Type]
        TYPE_ASK: _ClassVar[FlowNode.Type]
        TYPE_TOOL: _ClassVar[FlowNode.Type]
        TYPE_TRANSFER: _ClassVar[FlowNode.Type]
        TYPE_END_CALL: _ClassVar[FlowNode.Type]
    TYPE_UNSPECIFIED: FlowNode.Type
    TYPE_START: FlowNode.Type
    TYPE_SAY: FlowNode.Type
    TYPE_ASK: FlowNode.Type
    TYPE_TOOL: FlowNode.Type
    TYPE_TRANSFER: FlowNode.Type
    TYPE_END_CALL: FlowNode.Type
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEXT_NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    TOOL_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: FlowNode.Type
    prompt: str
    next_node_ids: _containers.RepeatedScalarFieldContainer[str]
    tool_id: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[FlowNode.Type, str]] = ..., prompt: _Optional[str] = ..., next_node_ids: _Optional[_Iterable[str]] = ..., tool_id: _Optional[str] = ...) -> None: ...

class BusinessHours(_message.Message):
    __slots__ = ("time_zone", "windows")
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    time_zone: str
    windows: _containers.RepeatedCompositeFieldContainer[OpeningWindow]
    def __init__(self, time_zone: _Optional[str] = ..., windows: _Optional[_Iterable[_Union[OpeningWindow, _Mapping]]] = ...) -> None: ...

class OpeningWindow(_message.Message):
    __slots__ = ("day", "open_time", "close_time")
    class DayOfWeek(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DAY_OF_WEEK_UNSPECIFIED: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_MONDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_TUESDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_WEDNESDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_THURSDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_FRIDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_SATURDAY: _ClassVar[OpeningWindow.DayOfWeek]
        DAY_OF_WEEK_SUNDAY: _ClassVar[OpeningWindow.DayOfWeek]
    DAY_OF_WEEK_UNSPECIFIED: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_MONDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_TUESDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_WEDNESDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_THURSDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_FRIDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_SATURDAY: OpeningWindow.DayOfWeek
    DAY_OF_WEEK_SUNDAY: OpeningWindow.DayOfWeek
    DAY_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    day: OpeningWindow.DayOfWeek
    open_time: str
    close_time: str
    def __init__(self, day: _Optional[_Union[OpeningWindow.DayOfWeek, str]] = ..., open_time: _Optional[str] = ..., close_time: _Optional[str] = ...) -> None: ...

class Draft(_message.Message):
    __slots__ = ("name", "config", "etag", "update_time", "has_unpublished_changes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    HAS_UNPUBLISHED_CHANGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    config: AgentConfig
    etag: str
    update_time: _timestamp_pb2.Timestamp
    has_unpublished_changes: bool
    def __init__(self, name: _Optional[str] = ..., config: _Optional[_Union[AgentConfig, _Mapping]] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_unpublished_changes: _Optional[bool] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("name", "number", "config", "content_sha256", "changed_sections", "create_time", "creator")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHANGED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    number: int
    config: AgentConfig
    content_sha256: str
    changed_sections: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    creator: str
    def __init__(self, name: _Optional[str] = ..., number: _Optional[int] = ..., config: _Optional[_Union[AgentConfig, _Mapping]] = ..., content_sha256: _Optional[str] = ..., changed_sections: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creator: _Optional[str] = ...) -> None: ...

class Violation(_message.Message):
    __slots__ = ("field", "code", "message", "severity")
    class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SEVERITY_UNSPECIFIED: _ClassVar[Violation.Severity]
        SEVERITY_ERROR: _ClassVar[Violation.Severity]
        SEVERITY_WARNING: _ClassVar[Violation.Severity]
    SEVERITY_UNSPECIFIED: Violation.Severity
    SEVERITY_ERROR: Violation.Severity
    SEVERITY_WARNING: Violation.Severity
    FIELD_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    field: str
    code: str
    message: str
    severity: Violation.Severity
    def __init__(self, field: _Optional[str] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., severity: _Optional[_Union[Violation.Severity, str]] = ...) -> None: ...

class ValidationReport(_message.Message):
    __slots__ = ("name", "violations")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    violations: _containers.RepeatedCompositeFieldContainer[Violation]
    def __init__(self, name: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[Violation, _Mapping]]] = ...) -> None: ...

class FieldChange(_message.Message):
    __slots__ = ("field", "base_value", "target_value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    BASE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TARGET_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    base_value: str
    target_value: str
    def __init__(self, field: _Optional[str] = ..., base_value: _Optional[str] = ..., target_value: _Optional[str] = ...) -> None: ...

class PublishError(_message.Message):
    __slots__ = ("reason", "message", "field")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[PublishError.Reason]
        REASON_INVALID_CONFIG: _ClassVar[PublishError.Reason]
        REASON_DEPLOY_UNAVAILABLE: _ClassVar[PublishError.Reason]
        REASON_TIMEOUT: _ClassVar[PublishError.Reason]
        REASON_INTERNAL: _ClassVar[PublishError.Reason]
    REASON_UNSPECIFIED: PublishError.Reason
    REASON_INVALID_CONFIG: PublishError.Reason
    REASON_DEPLOY_UNAVAILABLE: PublishError.Reason
    REASON_TIMEOUT: PublishError.Reason
    REASON_INTERNAL: PublishError.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    reason: PublishError.Reason
    message: str
    field: str
    def __init__(self, reason: _Optional[_Union[PublishError.Reason, str]] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class PublishJob(_message.Message):
    __slots__ = ("name", "version", "state", "error", "attempts", "create_time", "update_time", "deadline", "changed_sections", "requester", "trace_id")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[PublishJob.State]
        STATE_SUBMITTED: _ClassVar[PublishJob.State]
        STATE_PROCESSING: _ClassVar[PublishJob.State]
        STATE_PUBLISHED: _ClassVar[PublishJob.State]
        STATE_FAILED: _ClassVar[PublishJob.State]
        STATE_SUPERSEDED: _ClassVar[PublishJob.State]
    STATE_UNSPECIFIED: PublishJob.State
    STATE_SUBMITTED: PublishJob.State
    STATE_PROCESSING: PublishJob.State
    STATE_PUBLISHED: PublishJob.State
    STATE_FAILED: PublishJob.State
    STATE_SUPERSEDED: PublishJob.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    state: PublishJob.State
    error: PublishError
    attempts: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    changed_sections: _containers.RepeatedScalarFieldContainer[str]
    requester: str
    trace_id: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[PublishJob.State, str]] = ..., error: _Optional[_Union[PublishError, _Mapping]] = ..., attempts: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_sections: _Optional[_Iterable[str]] = ..., requester: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...
