"""The canonical serialisation of an AgentConfig and its sha256.

Every service that names a config by hash (config's versions, the publisher's bundles, the
runtime's check) uses these two functions, so the hash means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf import json_format

from speako.config.v1 import resources_pb2


def config_to_dict(config: resources_pb2.AgentConfig) -> dict[str, Any]:
    """Return the config as plain JSON data: proto field names, enum names, defaults omitted."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def canonical_bytes(config: resources_pb2.AgentConfig) -> bytes:
    """Serialise a config deterministically.

    Protobuf's binary encoding is not canonical across versions and languages; sorted, compact
    JSON with default values omitted is, and an unset field equals an empty one.
    """
    return json.dumps(config_to_dict(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_sha256(config: resources_pb2.AgentConfig) -> str:
    """Return the hex sha256 of the canonical serialisation."""
    return canonical_sha256(canonical_bytes(config))


def canonical_sha256(canonical: bytes) -> str:
    """The hex sha256 of bytes from ``canonical_bytes`` (for callers that keep the bytes too)."""
    return hashlib.sha256(canonical).hexdigest()
