"""Deploy rules: bundle verification and the live-version compare-and-set decision."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from services.activation.domain.errors import InvalidBundle, Superseded

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose names agree and whose content hashes to the declared sha256."""

    agent: str
    version: str
    version_number: int
    content_sha256: str


def verify_bundle(
    *,
    agent: str,
    version: str,
    version_agent: str,
    version_number: int,
    has_config: bool,
    declared_sha256: str,
    computed_sha256: str,
) -> VerifiedBundle:
    """Check the bundle holds together; raise InvalidBundle with every reason it does not."""
    problems: list[tuple[str, str]] = []
    if version_agent != agent:
        problems.append(("bundle.version", f"version {version} does not belong to agent {agent}"))
    if not has_config:
        problems.append(("bundle.config", "is required"))
    if not _SHA256_HEX.fullmatch(declared_sha256):
        problems.append(("bundle.content_sha256", "must be 64 lowercase hex digits (sha256)"))
    elif has_config and declared_sha256 != computed_sha256:
        problems.append(
            (
                "bundle.content_sha256",
                f"does not match the config: declared {declared_sha256}, canonical content hashes to {computed_sha256}",
            )
        )
    if problems:
        raise InvalidBundle("bundle rejected: " + "; ".join(f"{f} {d}" for f, d in problems), problems)
    return VerifiedBundle(agent, version, version_number, declared_sha256)


class DeployOutcome(enum.Enum):
    """What a deploy does to the agent's live version."""

    MAKE_LIVE = "MAKE_LIVE"  # newer than live (or the first): it becomes live
    ALREADY_DEPLOYED = "ALREADY_DEPLOYED"  # this version was deployed before: answer as before


def decide_deploy(bundle: VerifiedBundle, live_version: int | None, deployed_sha256: str | None) -> DeployOutcome:
    """Decide a deploy given the live version number and the sha this version was deployed with.

    Live never goes backwards: a version older than live that was never deployed is superseded.
    A version deployed before is idempotent (its retry answers the same Deployment), but only
    with the same content: a version is immutable.
    """
    if deployed_sha256 is not None:
        if deployed_sha256 != bundle.content_sha256:
            raise InvalidBundle(
                f"{bundle.version} was already deployed with content {deployed_sha256}",
                [
                    (
                        "bundle.content_sha256",
                        f"{bundle.version} was already deployed with different content "
                        f"({deployed_sha256}); versions are immutable",
                    )
                ],
            )
        return DeployOutcome.ALREADY_DEPLOYED
    if live_version is None or bundle.version_number > live_version:
        return DeployOutcome.MAKE_LIVE
    raise Superseded(bundle.agent, bundle.version_number, live_version)
