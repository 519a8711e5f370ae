"""Protobuf messages <-> plain data for YAML/JSON, and one-field edits by path (pure, no I/O).

Output uses proto field names (the names of AgentConfig in DESIGN.md), enum value names, RFC 3339
timestamps and real integers (the proto3 JSON mapping would print int64 as strings). Input accepts
the same, plus short enum names (``friendly`` for ``TONE_FRIENDLY``).
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from speako.config.v1 import resources_pb2

_MESSAGE = FieldDescriptor.TYPE_MESSAGE
_ENUM = FieldDescriptor.TYPE_ENUM
_BOOL = FieldDescriptor.TYPE_BOOL
_STRING = FieldDescriptor.TYPE_STRING
_FLOATS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_TIMESTAMP = "google.protobuf.Timestamp"
_FIELD_MASK = "google.protobuf.FieldMask"


class DataError(ValueError):
    """Input that does not fit the message; the text names the field."""


def _is_map(field: Any) -> bool:
    return field.type == _MESSAGE and field.message_type.GetOptions().map_entry


def _scalar_out(field: Any, value: Any) -> Any:
    if field.type == _ENUM:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    if field.type == _MESSAGE:
        return message_to_dict(value)
    return value


def message_to_dict(message: Message, *, empty_lists: bool = False) -> Any:
    """Plain data of a message: set fields only, proto field names, enum names, ints as ints.

    ``empty_lists`` also writes this message's own empty repeated fields as ``[]`` (for responses,
    so a script can rely on e.g. ``changes`` being present).
    """
    full_name = message.DESCRIPTOR.full_name
    if full_name == _TIMESTAMP:
        return message.ToJsonString()  # type: ignore[attr-defined]
    if full_name == _FIELD_MASK:
        return list(message.paths)  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    field: Any
    for field, value in message.ListFields():
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {key: _scalar_out(value_field, item) for key, item in value.items()}
        elif field.is_repeated:
            out[field.name] = [_scalar_out(field, item) for item in value]
        else:
            out[field.name] = _scalar_out(field, value)
    if empty_lists:
        for field in message.DESCRIPTOR.fields:
            if field.is_repeated and not _is_map(field) and field.name not in out:
                out[field.name] = []
        order = [f.name for f in message.DESCRIPTOR.fields]
        out = dict(sorted(out.items(), key=lambda kv: order.index(kv[0])))
    return out


def to_yaml(data: Any) -> str:
    """Block-style YAML that keeps field order and unicode."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False)


def enum_value_name(field: Any, raw: Any) -> Any:
    """Accept ``TONE_FRIENDLY``, ``friendly``, ``Friendly`` or a number for an enum field."""
    enum = field.enum_type
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return raw
    if isinstance(raw, int):
        return raw
    if raw in enum.values_by_name:
        return raw
    zero = enum.values_by_number[0].name
    prefix = zero[: -len("UNSPECIFIED")] if zero.endswith("UNSPECIFIED") else ""
    candidate = prefix + raw.strip().upper().replace("-", "_").replace(" ", "_")
    if candidate in enum.values_by_name:
        return candidate
    choices = ", ".join(v.name.removeprefix(prefix).lower() for v in enum.values if v.number != 0)
    raise DataError(f"{raw!r} is not one of: {choices}")


def _normalise(descriptor: Any, data: Any, path: str) -> Any:
    """Rewrite short enum names into full ones, walking the data alongside the descriptor."""
    if not isinstance(data, dict) or descriptor.full_name in (_TIMESTAMP, _FIELD_MASK):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key)
        where = f"{path}.{key}" if path else str(key)
        if field is None:
            out[key] = value  # ParseDict reports unknown fields with their name
        elif _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[key] = (
                {k: _normalise_value(value_field, v, f"{where}[{k!r}]") for k, v in value.items()}
                if isinstance(value, dict)
                else value
            )
        elif field.is_repeated and isinstance(value, list):
            out[key] = [_normalise_value(field, item, f"{where}[{i}]") for i, item in enumerate(value)]
        else:
            out[key] = _normalise_value(field, value, where)
    return out


def _normalise_value(field: Any, value: Any, where: str) -> Any:
    if field.type == _ENUM:
        try:
            return enum_value_name(field, value)
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    if field.type == _MESSAGE:
        return _normalise(field.message_type, value, where)
    return value


def dict_to_message(data: Any, message: Message, what: str) -> Message:
    """Fill ``message`` from plain data; DataError names the offending field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DataError(f"{what} must be a mapping of field names, got {type(data).__name__}")
    try:
        json_format.ParseDict(_normalise(message.DESCRIPTOR, data, ""), message)
    except json_format.ParseError as exc:
        raise DataError(f"{what}: {exc}") from None
    return message


def config_from_data(data: Any, what: str = "config") -> resources_pb2.AgentConfig:
    """An AgentConfig from parsed YAML/JSON using AgentConfig field names."""
    config = resources_pb2.AgentConfig()
    dict_to_message(data, config, what)
    return config


# --- one field by path -------------------------------------------------------------------------


def resolve_path(path: str) -> list[Any]:
    """The fields along an AgentConfig path such as ``greetings.opening_greeting``."""
    if not path:
        raise DataError("the field path is empty")
    descriptor: Any = resources_pb2.AgentConfig.DESCRIPTOR
    fields: list[Any] = []
    parts = path.split(".")
    for depth, part in enumerate(parts):
        field = descriptor.fields_by_name.get(part)
        where = ".".join(parts[:depth]) or "AgentConfig"
        if field is None:
            known = sorted(descriptor.fields_by_name)
            close = difflib.get_close_matches(part, known, n=1)
            hint = f"; did you mean {'.'.join([*parts[:depth], close[0]])!r}?" if close else ""
            raise DataError(
                f"{path!r} is not a field path: {where} has no field {part!r} (it has {', '.join(known)}){hint}"
            )
        fields.append(field)
        if depth < len(parts) - 1:
            if field.type != _MESSAGE or field.is_repeated:
                kind = "a list" if field.is_repeated else "a single value"
                raise DataError(
                    f"{path!r} is not a field path: {'.'.join(parts[: depth + 1])} is {kind}; "
                    "set it as a whole (give the full list or map as YAML/JSON)"
                )
            descriptor = field.message_type
    return fields


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise DataError(f"{raw!r} is not a boolean (true or false)")


def parse_field_value(field: Any, raw: str) -> Any:
    """The value for one field typed at a terminal: strings verbatim, the rest as YAML/JSON."""
    if _is_map(field) or (field.type == _MESSAGE and not field.is_repeated):
        try:
            value = yaml.safe_load(raw) if raw.strip() else {}
        except yaml.YAMLError as exc:
            raise DataError(f"{field.name}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise DataError(f"{field.name} takes a mapping, e.g. '{{key: value}}'")
        return value
    if field.is_repeated:
        try:
            value = yaml.safe_load(raw) if raw.strip() else []
        except yaml.YAMLError as exc:
            raise DataError(f"{field.name}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
        if value is None:
            value = []
        if isinstance(value, str) and field.type == _STRING:
            # ``es-MX,fr-FR`` is the natural way to type a short list of strings.
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list):
            raise DataError(f"{field.name} takes a list, e.g. '[a, b]' or a JSON array")
        return value
    if field.type == _STRING:
        return raw
    if field.type == _BOOL:
        return _parse_bool(raw)
    if field.type == _ENUM:
        try:
            return enum_value_name(field, raw.strip())
        except DataError as exc:
            raise DataError(f"{field.name}: {exc}") from None
    try:
        return float(raw) if field.type in _FLOATS else int(raw)
    except ValueError:
        raise DataError(f"{field.name}: {raw!r} is not a number") from None


def config_with_field(path: str, raw: str | None) -> resources_pb2.AgentConfig:
    """An AgentConfig holding only ``path`` set from ``raw`` (None leaves it unset: a clear)."""
    fields = resolve_path(path)
    config = resources_pb2.AgentConfig()
    if raw is None:
        return config
    value = parse_field_value(fields[-1], raw)
    data: Any = value
    for field in reversed(fields):
        data = {field.name: data}
    return dict_to_message(data, config, path)  # type: ignore[return-value]


def flatten(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, leaf value) pairs of nested data, for a one-line-per-field table."""
    if isinstance(data, dict) and data:
        out: list[tuple[str, Any]] = []
        for key, value in data.items():
            out += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(data, list) and data:
        out = []
        for i, value in enumerate(data):
            out += flatten(value, f"{prefix}[{i}]")
        return out
    return [(prefix, data)]
