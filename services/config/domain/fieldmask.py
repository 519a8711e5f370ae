"""Field-mask updates over AgentConfig paths (AIP-134 semantics)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf.message import Message

from speako.config.v1 import resources_pb2

_MESSAGE = _descriptor.FieldDescriptor.TYPE_MESSAGE


class UnknownFieldPath(ValueError):
    """An update_mask path that does not name a field of AgentConfig."""

    def __init__(self, index: int, path: str, reason: str) -> None:
        super().__init__(f"update_mask path {path!r} {reason}")
        self.index = index
        self.path = path
        self.reason = reason


def _is_repeated(field: Any) -> bool:
    return bool(field.is_repeated)


def _resolve(path: str, index: int) -> list[str]:
    """Split and check one path; return its parts."""
    if not path:
        raise UnknownFieldPath(index, path, "is empty")
    descriptor: Any = resources_pb2.AgentConfig.DESCRIPTOR
    parts = path.split(".")
    for depth, part in enumerate(parts):
        field = descriptor.fields_by_name.get(part)
        if field is None:
            prefix = ".".join(parts[:depth]) or "AgentConfig"
            known = ", ".join(sorted(descriptor.fields_by_name))
            raise UnknownFieldPath(index, path, f"is not a field: {prefix} has no {part!r} (it has {known})")
        last = depth == len(parts) - 1
        if not last:
            if field.type != _MESSAGE or _is_repeated(field):
                raise UnknownFieldPath(
                    index, path, f"cannot reach inside {'.'.join(parts[: depth + 1])!r}: name the whole field"
                )
            descriptor = field.message_type
    return parts


def validate_paths(paths: Sequence[str]) -> list[list[str]]:
    """Check every path of a mask; raise UnknownFieldPath naming the first bad one."""
    return [_resolve(path, i) for i, path in enumerate(paths)]


def apply_update_mask(
    current: resources_pb2.AgentConfig, update: resources_pb2.AgentConfig, paths: Sequence[str]
) -> resources_pb2.AgentConfig:
    """Return ``current`` with the masked fields replaced by those of ``update``.

    An empty mask (or ``*``) replaces the whole config. A named message, list or map field is
    replaced as a whole (never merged), so the result is exactly what the client sent for it.
    """
    if not paths or list(paths) == ["*"]:
        result = resources_pb2.AgentConfig()
        result.CopyFrom(update)
        return result
    resolved = validate_paths(paths)
    result = resources_pb2.AgentConfig()
    result.CopyFrom(current)
    for parts in resolved:
        dst: Message = result
        src: Message | None = update
        for part in parts[:-1]:
            src = getattr(src, part) if src is not None and src.HasField(part) else None
            dst = getattr(dst, part)
        last = parts[-1]
        dst.ClearField(last)
        if src is None:
            continue
        field = dst.DESCRIPTOR.fields_by_name[last]
        if _is_repeated(field):
            getattr(dst, last).MergeFrom(getattr(src, last))
        elif field.type == _MESSAGE:
            if src.HasField(last):
                getattr(dst, last).CopyFrom(getattr(src, last))
        else:
            setattr(dst, last, getattr(src, last))
    return result
