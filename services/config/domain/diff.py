"""What changed between two configs: top-level sections, and field paths with both values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor as _descriptor

from speako.config.v1 import resources_pb2

from .canonical import config_to_dict

_MESSAGE = _descriptor.FieldDescriptor.TYPE_MESSAGE
_ROOT = resources_pb2.AgentConfig.DESCRIPTOR


@dataclass(frozen=True)
class Change:
    """One changed field; values are JSON text, "" when the field is absent on that side."""

    field: str
    base_value: str
    target_value: str


def _json(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _fields(descriptor: Any) -> list[_descriptor.FieldDescriptor]:
    return sorted(descriptor.fields, key=lambda f: f.number)


def _is_map(field: Any) -> bool:
    return field.type == _MESSAGE and field.message_type.GetOptions().map_entry


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def changed_sections(old: resources_pb2.AgentConfig | None, new: resources_pb2.AgentConfig) -> list[str]:
    """Return the top-level AgentConfig fields that differ, in field-number order.

    With no previous version, every section the new config sets counts as changed. Compares
    protobuf values (C speed even for megabytes of knowledge) with the same meaning as the
    canonical form: a message section that is set but empty differs from one that is unset.
    """
    old = old if old is not None else resources_pb2.AgentConfig()
    changed = []
    for field in _fields(_ROOT):
        name = field.name
        if field.type == _MESSAGE and not _is_repeated(field):
            if old.HasField(name) != new.HasField(name):
                changed.append(name)
                continue
        if getattr(old, name) != getattr(new, name):
            changed.append(name)
    return changed


def _walk(
    descriptor: Any,
    base: dict[str, Any],
    target: dict[str, Any],
    prefix: str,
    out: list[Change],
) -> None:
    for field in _fields(descriptor):
        a, b = base.get(field.name), target.get(field.name)
        if a == b:
            continue
        path = prefix + field.name
        if _is_map(field):
            a, b = a or {}, b or {}
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    out.append(
                        Change(
                            f"{path}[{json.dumps(key, ensure_ascii=False)}]",
                            _json(a.get(key)),
                            _json(b.get(key)),
                        )
                    )
        elif _is_repeated(field) and field.type == _MESSAGE:
            a, b = a or [], b or []
            for i in range(max(len(a), len(b))):
                x = a[i] if i < len(a) else None
                y = b[i] if i < len(b) else None
                if x == y:
                    continue
                if x is None or y is None:
                    out.append(Change(f"{path}[{i}]", _json(x), _json(y)))
                else:
                    _walk(field.message_type, x, y, f"{path}[{i}].", out)
        elif field.type == _MESSAGE:
            before = len(out)
            _walk(field.message_type, a or {}, b or {}, path + ".", out)
            if len(out) == before:
                # Only presence differs (unset vs set but empty): report the section itself.
                out.append(Change(path, _json(a), _json(b)))
        else:
            # Scalars and lists of scalars (e.g. voice.additional_languages) change as one value.
            out.append(Change(path, _json(a), _json(b)))


def normalized(config: resources_pb2.AgentConfig) -> resources_pb2.AgentConfig:
    """Return a copy without sections that are set but empty (they mean the same to an owner)."""
    result = resources_pb2.AgentConfig()
    result.CopyFrom(config)
    return normalize(result)


def normalize(config: resources_pb2.AgentConfig) -> resources_pb2.AgentConfig:
    """Drop sections that are set but empty, in place (no copy of a config that can be megabytes)."""
    for field in _fields(_ROOT):
        if field.type == _MESSAGE and not _is_repeated(field):
            if config.HasField(field.name) and getattr(config, field.name).ByteSize() == 0:
                config.ClearField(field.name)
    return config


def diff_configs(base: resources_pb2.AgentConfig, target: resources_pb2.AgentConfig) -> list[Change]:
    """Return every changed leaf field path between two configs, in field order."""
    out: list[Change] = []
    _walk(_ROOT, config_to_dict(base), config_to_dict(target), "", out)
    return out
