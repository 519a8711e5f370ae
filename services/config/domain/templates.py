"""Greeting templates: the only placeholders are {business_name}, {agent_name} and {caller_name}."""

from __future__ import annotations

from dataclasses import dataclass

PLACEHOLDERS: frozenset[str] = frozenset({"business_name", "agent_name", "caller_name"})


@dataclass(frozen=True)
class TemplateProblem:
    """One defect of a template: a stable code and an owner-readable message."""

    code: str
    message: str


def _allowed() -> str:
    return ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))


def template_problems(text: str) -> list[TemplateProblem]:
    """Return every defect of a greeting template (empty list when it is well formed).

    Braces have no escape: a caller never hears a literal brace, so any brace that is not part of
    one of the known placeholders is a mistake of the author.
    """
    problems: list[TemplateProblem] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "}":
            problems.append(
                TemplateProblem(
                    "GREETING_UNBALANCED_BRACE",
                    f"The closing brace at position {i + 1} has no matching opening brace.",
                )
            )
            i += 1
            continue
        if ch != "{":
            i += 1
            continue
        close = text.find("}", i + 1)
        nested = text.find("{", i + 1)
        if close == -1 or (nested != -1 and nested < close):
            problems.append(
                TemplateProblem(
                    "GREETING_UNBALANCED_BRACE",
                    f"The opening brace at position {i + 1} is never closed.",
                )
            )
            i += 1
            continue
        name = text[i + 1 : close]
        if name not in PLACEHOLDERS:
            shown = name if len(name) <= 40 else name[:40] + "..."
            problems.append(
                TemplateProblem(
                    "GREETING_UNKNOWN_PLACEHOLDER",
                    f"The placeholder {{{shown}}} is not known; use only {_allowed()}.",
                )
            )
        i = close + 1
    return problems
