"""The pre-launch list ActivateAgent checks."""

from __future__ import annotations

from collections.abc import Sequence

from services.activation.domain.errors import Violation
from services.config.domain.checklist import Finding, Severity


def launch_violations(
    agent: str,
    live_version: str | None,
    phone_numbers: Sequence[str],
    findings: Sequence[Finding],
) -> list[Violation]:
    """Return every unmet launch condition (empty when the agent may go live).

    `findings` are the config checklist's results for the live version (empty when none is live).
    """
    violations: list[Violation] = []
    if live_version is None:
        violations.append(Violation("LIVE_VERSION", agent, "no version has been deployed; publish the agent first"))
    if not phone_numbers:
        violations.append(Violation("PHONE_NUMBER", agent, "no phone number is assigned; assign one first"))
    if live_version is not None:
        for finding in findings:
            if finding.severity is Severity.ERROR:
                violations.append(
                    Violation(
                        "CHECKLIST",
                        live_version,
                        f"{finding.field}: {finding.message} ({finding.code})",
                    )
                )
    return violations
