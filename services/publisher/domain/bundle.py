"""Packaging an immutable version into the bundle the runtime deploys."""

from __future__ import annotations

from services.config.domain.canonical import content_sha256
from speako.activation.v1 import resources_pb2 as activation_pb2
from speako.config.v1 import resources_pb2 as config_pb2


class PackagingError(Exception):
    """The version cannot be packaged faithfully (its content does not match its hash)."""


def package(version: config_pb2.Version, agent: str, expected_sha256: str = "") -> activation_pb2.Bundle:
    """Build the Bundle of a version; its sha256 must equal the version's and the request's."""
    if not version.name.startswith(agent + "/versions/"):
        raise PackagingError(f"version {version.name!r} does not belong to agent {agent!r}")
    digest = content_sha256(version.config)
    if digest != version.content_sha256:
        raise PackagingError(
            f"content of {version.name} hashes to {digest}, but the version says {version.content_sha256}"
        )
    if expected_sha256 and digest != expected_sha256:
        raise PackagingError(
            f"content of {version.name} hashes to {digest}, but the publish request expects {expected_sha256}"
        )
    return activation_pb2.Bundle(agent=agent, version=version.name, content_sha256=digest, config=version.config)
