"""The pre-launch checklist: every rule a config must meet before callers hear it.

Pure Python over the generated AgentConfig message. Config's ValidateDraft/PublishDraft and
activation's ActivateAgent both call ``check_config``; nobody copies these rules.

Field paths point into AgentConfig (``greetings.opening_greeting``, ``tools[0].url``,
``flow.nodes[3]``, ``pronunciations["gyro"]``). Codes are stable identifiers clients may match on;
messages are written for the business owner.
"""

from __future__ import annotations

import enum
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from speako.config.v1 import resources_pb2

from .flowgraph import analyse
from .templates import template_problems

# --- limits (bytes are UTF-8 bytes, characters are Unicode code points) ------------------------

MAX_CONFIG_BYTES = 8 * 1024 * 1024  # the whole draft, serialised
MAX_ARTICLE_BYTES = 512 * 1024  # one knowledge article body
MAX_PROMPT_CHARS = 50_000  # personality.prompt
MAX_STRING_CHARS = 10_000  # every other string (greetings, FAQ answers, node prompts, ...)
MAX_ID_CHARS = 64  # tool and flow node ids
MAX_TOOLS = 50
MAX_FAQS = 2_000
MAX_ARTICLES = 500
MAX_FLOW_NODES = 500
MAX_NEXT_NODES = 20
MAX_ADDITIONAL_LANGUAGES = 20
MAX_OPENING_WINDOWS = 50
MAX_PRONUNCIATIONS = 2_000

# Codes of the size limits: a draft breaking one is refused at save time, not only at publish.
SIZE_LIMIT_CODES = frozenset({"CONFIG_TOO_LARGE", "ARTICLE_TOO_LARGE", "STRING_TOO_LONG", "TOO_MANY_ITEMS"})


class Severity(enum.Enum):
    """ERROR blocks publishing and activation; WARNING is advice."""

    ERROR = "ERROR"
    WARNING = "WARNING"


@dataclass(frozen=True)
class Finding:
    """One result of the checklist."""

    field: str
    code: str
    message: str
    severity: Severity


def has_errors(findings: Iterable[Finding]) -> bool:
    """Return True when any finding is an ERROR."""
    return any(f.severity is Severity.ERROR for f in findings)


# --- small validators ---------------------------------------------------------------------------

# RFC 5646 well-formed language tags (privateuse-only and grandfathered tags are not accepted: the
# speech runtime cannot speak them). Primary language subtags are 2-3 letters: no registered
# language uses the 4-8 letter forms, and accepting them would let "english" through.
_LANGUAGE_TAG = re.compile(
    r"^[a-z]{2,3}(-[a-z]{3}){0,3}"  # language + extlang
    r"(-[a-z]{4})?"  # script
    r"(-([a-z]{2}|[0-9]{3}))?"  # region
    r"(-([a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"  # variants
    r"(-[0-9a-wyz](-[a-z0-9]{2,8})+)*"  # extensions
    r"(-x(-[a-z0-9]{1,8})+)?$",  # private use
    re.IGNORECASE,
)
_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s@]+@)?([^/?#\s:@]+)(:[0-9]{1,5})?([/?#]\S*)?$")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")
_TZ_KEY = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


def is_language_tag(tag: str) -> bool:
    """Return True for a well-formed BCP 47 language tag such as en-US or zh-Hant-TW."""
    return bool(_LANGUAGE_TAG.fullmatch(tag))


def is_e164(number: str) -> bool:
    """Return True for an E.164 phone number such as +14155550123."""
    return bool(_E164.fullmatch(number))


def is_time_zone(key: str) -> bool:
    """Return True for an IANA time zone known to this host, such as America/New_York."""
    if not _TZ_KEY.fullmatch(key) or key.lower() in {"localtime", "posixrules", "factory"}:
        return False
    try:
        zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _kib(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


_TOOL_TYPE = resources_pb2.Tool.Type
_NODE_TYPE = resources_pb2.FlowNode.Type
_TERMINAL_NODES = (_NODE_TYPE.TYPE_END_CALL, _NODE_TYPE.TYPE_TRANSFER)
_NODES_WITH_PROMPT = (_NODE_TYPE.TYPE_SAY, _NODE_TYPE.TYPE_ASK)


class _Collector:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def error(self, field: str, code: str, message: str) -> None:
        self.findings.append(Finding(field, code, message, Severity.ERROR))

    def warning(self, field: str, code: str, message: str) -> None:
        self.findings.append(Finding(field, code, message, Severity.WARNING))

    def text(self, field: str, value: str, label: str, limit: int = MAX_STRING_CHARS) -> None:
        """Check the one-string limit."""
        if len(value) > limit:
            self.error(
                field,
                "STRING_TOO_LONG",
                f"{label} is {len(value):,} characters long; the limit is {limit:,}.",
            )

    def count(self, field: str, n: int, label: str, limit: int) -> bool:
        """Check a list-length limit; return False when exceeded."""
        if n > limit:
            self.error(field, "TOO_MANY_ITEMS", f"There are {n:,} {label}; the limit is {limit:,}.")
            return False
        return True


# --- sections -----------------------------------------------------------------------------------

_GREETING_LABELS = {
    "opening_greeting": "The opening greeting",
    "after_hours_message": "The after-hours message",
    "returning_customer_greeting": "The returning-customer greeting",
    "recording_consent": "The recording consent message",
}


def _check_greetings(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    greetings = config.greetings
    if not greetings.opening_greeting.strip():
        c.error(
            "greetings.opening_greeting",
            "GREETING_OPENING_EMPTY",
            "The opening greeting is empty: callers would hear silence when the agent picks up.",
        )
    for field, label in _GREETING_LABELS.items():
        value: str = getattr(greetings, field)
        path = f"greetings.{field}"
        c.text(path, value, label)
        if len(value) > MAX_STRING_CHARS:
            continue
        for problem in template_problems(value):
            c.error(path, problem.code, f"{label}: {problem.message}")


def _check_voice(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    voice = config.voice
    c.text("voice.voice_id", voice.voice_id, "The voice id", MAX_ID_CHARS * 4)
    primary = voice.primary_language
    if not primary:
        c.error(
            "voice.primary_language",
            "LANGUAGE_MISSING",
            "No primary language is set; choose the language the agent speaks, such as en-US.",
        )
    elif not is_language_tag(primary):
        c.error(
            "voice.primary_language",
            "LANGUAGE_INVALID",
            f"{primary[:40]!r} is not a valid language tag; use a BCP 47 tag such as en-US or es-MX.",
        )
    if not c.count(
        "voice.additional_languages",
        len(voice.additional_languages),
        "additional languages",
        MAX_ADDITIONAL_LANGUAGES,
    ):
        return
    seen = {primary.lower()} if primary else set()
    for i, tag in enumerate(voice.additional_languages):
        path = f"voice.additional_languages[{i}]"
        if not is_language_tag(tag):
            c.error(
                path,
                "LANGUAGE_INVALID",
                f"{tag[:40]!r} is not a valid language tag; use a BCP 47 tag such as en-US or es-MX.",
            )
        elif tag.lower() in seen:
            c.warning(path, "LANGUAGE_DUPLICATE", f"The language {tag} is listed more than once.")
        seen.add(tag.lower())


def _check_personality(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    personality = config.personality
    c.text("personality.name", personality.name, "The agent name")
    if not personality.prompt.strip():
        c.error(
            "personality.prompt",
            "PERSONALITY_PROMPT_EMPTY",
            "The personality prompt is empty: the agent needs instructions on how to behave.",
        )
    c.text("personality.prompt", personality.prompt, "The personality prompt", MAX_PROMPT_CHARS)


def _check_tools(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    tools = config.tools
    if not c.count("tools", len(tools), "tools", MAX_TOOLS):
        return
    seen: dict[str, int] = {}
    transfer_enabled = False
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        # A disabled tool is never used on a call, so its defects are advice, not blockers.
        report = c.error if tool.enabled else c.warning
        if not tool.id:
            c.error(f"{path}.id", "TOOL_ID_MISSING", f"Tool {i + 1} has no id.")
        elif len(tool.id) > MAX_ID_CHARS:
            c.error(f"{path}.id", "STRING_TOO_LONG", f"Tool ids are limited to {MAX_ID_CHARS} characters.")
        elif tool.id in seen:
            c.error(
                f"{path}.id",
                "TOOL_DUPLICATE_ID",
                f"The tool id {tool.id!r} is used by tools {seen[tool.id] + 1} and {i + 1}; ids must be unique.",
            )
        else:
            seen[tool.id] = i
        c.text(f"{path}.description", tool.description, "The tool description")
        if tool.type == _TOOL_TYPE.TYPE_UNSPECIFIED:
            report(f"{path}.type", "TOOL_TYPE_MISSING", f"Tool {i + 1} has no type.")
        elif tool.type == _TOOL_TYPE.TYPE_TRANSFER_CALL:
            if not is_e164(tool.transfer_number):
                shown = tool.transfer_number[:30] or "empty"
                report(
                    f"{path}.transfer_number",
                    "TOOL_TRANSFER_NUMBER_INVALID",
                    f"The transfer number ({shown}) is not in international E.164 format, such as +14155550123.",
                )
            elif tool.enabled:
                transfer_enabled = True
        elif tool.type == _TOOL_TYPE.TYPE_WEBHOOK:
            _check_webhook_url(c, f"{path}.url", tool.url, report)
        if tool.type != _TOOL_TYPE.TYPE_WEBHOOK:
            c.text(f"{path}.url", tool.url, "The tool URL")
    if not transfer_enabled:
        c.warning(
            "tools",
            "NO_TRANSFER_TOOL",
            "No call-transfer tool is enabled: callers cannot be passed to a person.",
        )


def _check_webhook_url(c: _Collector, path: str, url: str, report: Callable[[str, str, str], None]) -> None:
    if len(url) > 2048:
        report(path, "TOOL_WEBHOOK_URL_INVALID", "The webhook URL is longer than 2,048 characters.")
        return
    m = _URL.fullmatch(url)
    if not url or not m:
        shown = url[:60] or "empty"
        report(path, "TOOL_WEBHOOK_URL_INVALID", f"The webhook URL ({shown}) is not a valid URL.")
    elif m.group(1).lower() != "https":
        report(
            path,
            "TOOL_WEBHOOK_URL_NOT_HTTPS",
            f"The webhook URL must use https:// so call data is encrypted; it uses {m.group(1)}://.",
        )


def _check_knowledge(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    knowledge = config.knowledge
    faqs, articles = knowledge.faqs, knowledge.articles
    if not faqs and not articles:
        c.warning(
            "knowledge",
            "KNOWLEDGE_EMPTY",
            "The knowledge base is empty: the agent can only answer from its prompt.",
        )
    if c.count("knowledge.faqs", len(faqs), "FAQs", MAX_FAQS):
        for i, faq in enumerate(faqs):
            path = f"knowledge.faqs[{i}]"
            if not faq.question.strip():
                c.error(f"{path}.question", "FAQ_QUESTION_EMPTY", f"FAQ {i + 1} has no question.")
            if not faq.answer.strip():
                c.error(f"{path}.answer", "FAQ_ANSWER_EMPTY", f"FAQ {i + 1} has no answer.")
            c.text(f"{path}.question", faq.question, f"The question of FAQ {i + 1}")
            c.text(f"{path}.answer", faq.answer, f"The answer of FAQ {i + 1}")
    if c.count("knowledge.articles", len(articles), "articles", MAX_ARTICLES):
        for i, article in enumerate(articles):
            path = f"knowledge.articles[{i}]"
            if not article.body.strip():
                c.error(f"{path}.body", "ARTICLE_BODY_EMPTY", f"Article {i + 1} has no text.")
            if not article.title.strip():
                c.warning(f"{path}.title", "ARTICLE_TITLE_EMPTY", f"Article {i + 1} has no title.")
            c.text(f"{path}.title", article.title, f"The title of article {i + 1}")
            # Cheap pre-check: a body under limit/4 characters cannot exceed the byte limit.
            if len(article.body) * 4 > MAX_ARTICLE_BYTES:
                size = len(article.body.encode("utf-8"))
                if size > MAX_ARTICLE_BYTES:
                    c.error(
                        f"{path}.body",
                        "ARTICLE_TOO_LARGE",
                        f"Article {i + 1} is {_kib(size)}; one article is limited to {_kib(MAX_ARTICLE_BYTES)}.",
                    )


def _check_flow(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    flow = config.flow
    nodes = flow.nodes
    start = flow.start_node_id
    if not nodes and not start:
        return  # no scripted flow: the agent converses freely from its prompt
    if not c.count("flow.nodes", len(nodes), "flow steps", MAX_FLOW_NODES):
        return

    tools_by_id = {t.id: t for t in config.tools if t.id}
    transfer_tool_enabled = any(t.enabled and t.type == _TOOL_TYPE.TYPE_TRANSFER_CALL for t in config.tools)
    index: dict[str, int] = {}
    edges: dict[str, list[str]] = {}
    exits: list[str] = []
    for i, node in enumerate(nodes):
        path = f"flow.nodes[{i}]"
        if not node.id:
            c.error(f"{path}.id", "FLOW_NODE_ID_MISSING", f"Flow step {i + 1} has no id.")
            continue
        if len(node.id) > MAX_ID_CHARS:
            c.error(f"{path}.id", "STRING_TOO_LONG", f"Flow step ids are limited to {MAX_ID_CHARS} characters.")
            continue
        if node.id in index:
            c.error(
                path,
                "FLOW_DUPLICATE_NODE_ID",
                f"The step id {node.id!r} is used by steps {index[node.id] + 1} and {i + 1}; ids must be unique.",
            )
            continue
        index[node.id] = i
        # The call is over at an end-call or transfer step: nothing after one is reachable through it.
        terminal = node.type in _TERMINAL_NODES
        edges[node.id] = [] if terminal else list(node.next_node_ids)
        if terminal:
            exits.append(node.id)

    if not start:
        c.error("flow.start_node_id", "FLOW_START_MISSING", "The call flow has no start step.")
    elif start not in index:
        c.error(
            "flow.start_node_id",
            "FLOW_START_NOT_FOUND",
            f"The start step {start[:MAX_ID_CHARS]!r} does not exist in the call flow.",
        )

    for i, node in enumerate(nodes):
        path = f"flow.nodes[{i}]"
        label = f"Step {node.id[:MAX_ID_CHARS]!r}" if node.id else f"Step {i + 1}"
        c.text(f"{path}.prompt", node.prompt, f"The prompt of {label.lower()}")
        if node.type == _NODE_TYPE.TYPE_UNSPECIFIED:
            c.error(f"{path}.type", "FLOW_NODE_TYPE_MISSING", f"{label} has no type.")
        elif node.type == _NODE_TYPE.TYPE_START and node.id != start:
            c.error(
                path,
                "FLOW_EXTRA_START",
                f"{label} is a start step but the flow starts at {start[:MAX_ID_CHARS]!r}; a flow has one start.",
            )
        elif node.type in _NODES_WITH_PROMPT and not node.prompt.strip():
            c.error(f"{path}.prompt", "FLOW_NODE_PROMPT_EMPTY", f"{label} has nothing to say.")
        elif node.type == _NODE_TYPE.TYPE_TOOL:
            _check_tool_node(c, path, label, node, tools_by_id)
        elif node.type == _NODE_TYPE.TYPE_TRANSFER:
            _check_transfer_node(c, path, label, node, tools_by_id, transfer_tool_enabled)
        if not c.count(f"{path}.next_node_ids", len(node.next_node_ids), "next steps", MAX_NEXT_NODES):
            continue
        for j, nxt in enumerate(node.next_node_ids):
            if nxt not in index:
                c.error(
                    f"{path}.next_node_ids[{j}]",
                    "FLOW_NEXT_NOT_FOUND",
                    f"{label} continues to {nxt[:MAX_ID_CHARS]!r}, which does not exist.",
                )
        if node.type in _TERMINAL_NODES and node.next_node_ids:
            c.warning(
                f"{path}.next_node_ids",
                "FLOW_STEPS_AFTER_END",
                f"{label} ends the call, so the steps after it are never reached from it.",
            )

    if start not in index:
        return  # without a start, reachability says nothing useful
    analysis = analyse(start, edges, exits)
    for node_id in sorted(analysis.orphans, key=index.__getitem__):
        i = index[node_id]
        c.error(
            f"flow.nodes[{i}]",
            "FLOW_ORPHAN_NODE",
            f"Step {node_id!r} can never be reached from the start of the call.",
        )
    for node_id in sorted(analysis.trapped, key=index.__getitem__):
        i = index[node_id]
        if not [n for n in edges[node_id] if n in index]:
            c.error(
                f"flow.nodes[{i}]",
                "FLOW_DEAD_END",
                f"Step {node_id!r} leads nowhere: add a next step, or end with an end-call or transfer step.",
            )
        else:
            c.error(
                f"flow.nodes[{i}]",
                "FLOW_NO_EXIT",
                f"From step {node_id!r} the call can never reach an end-call or transfer step "
                "(it loops or runs into a dead end).",
            )


def _check_tool_node(
    c: _Collector, path: str, label: str, node: resources_pb2.FlowNode, tools: dict[str, resources_pb2.Tool]
) -> None:
    if not node.tool_id:
        c.error(f"{path}.tool_id", "FLOW_TOOL_MISSING", f"{label} runs a tool but does not say which.")
    elif node.tool_id not in tools:
        c.error(
            f"{path}.tool_id",
            "FLOW_TOOL_NOT_FOUND",
            f"{label} runs the tool {node.tool_id[:MAX_ID_CHARS]!r}, which does not exist.",
        )
    elif not tools[node.tool_id].enabled:
        c.error(
            f"{path}.tool_id",
            "FLOW_TOOL_DISABLED",
            f"{label} runs the tool {node.tool_id!r}, which is disabled.",
        )


def _check_transfer_node(
    c: _Collector,
    path: str,
    label: str,
    node: resources_pb2.FlowNode,
    tools: dict[str, resources_pb2.Tool],
    transfer_tool_enabled: bool,
) -> None:
    if node.tool_id:
        tool = tools.get(node.tool_id)
        if tool is None or tool.type != _TOOL_TYPE.TYPE_TRANSFER_CALL:
            c.error(
                f"{path}.tool_id",
                "FLOW_TOOL_NOT_FOUND",
                f"{label} transfers with {node.tool_id[:MAX_ID_CHARS]!r}, which is not a call-transfer tool.",
            )
        elif not tool.enabled:
            c.error(
                f"{path}.tool_id",
                "FLOW_TOOL_DISABLED",
                f"{label} transfers with the tool {node.tool_id!r}, which is disabled.",
            )
    elif not transfer_tool_enabled:
        c.error(
            path,
            "FLOW_TRANSFER_WITHOUT_TOOL",
            f"{label} transfers the call, but no call-transfer tool is enabled.",
        )


def _check_business_hours(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    hours = config.business_hours
    windows = hours.windows
    if hours.time_zone and not is_time_zone(hours.time_zone):
        c.error(
            "business_hours.time_zone",
            "TIME_ZONE_INVALID",
            f"{hours.time_zone[:60]!r} is not a known time zone; use an IANA name such as America/New_York.",
        )
    elif windows and not hours.time_zone:
        c.error(
            "business_hours.time_zone",
            "TIME_ZONE_MISSING",
            "Opening hours are set but no time zone: choose one such as America/New_York.",
        )
    if not c.count("business_hours.windows", len(windows), "opening windows", MAX_OPENING_WINDOWS):
        return
    by_day: dict[int, list[tuple[int, int, int]]] = {}
    for i, window in enumerate(windows):
        path = f"business_hours.windows[{i}]"
        ok = True
        if window.day == resources_pb2.OpeningWindow.DayOfWeek.DAY_OF_WEEK_UNSPECIFIED:
            c.error(f"{path}.day", "OPENING_WINDOW_DAY_MISSING", f"Opening window {i + 1} has no day.")
            ok = False
        for part in ("open_time", "close_time"):
            value = getattr(window, part)
            if not _HHMM.fullmatch(value):
                c.error(
                    f"{path}.{part}",
                    "OPENING_WINDOW_TIME_INVALID",
                    f"Opening window {i + 1}: {value[:20]!r} is not a time in HH:MM (24-hour) form.",
                )
                ok = False
        if not ok:
            continue
        opens, closes = _minutes(window.open_time), _minutes(window.close_time)
        if closes <= opens:
            c.error(
                path,
                "OPENING_WINDOW_EMPTY",
                f"Opening window {i + 1} closes ({window.close_time}) before it opens ({window.open_time}).",
            )
            continue
        by_day.setdefault(window.day, []).append((opens, closes, i))
    for spans in by_day.values():
        spans.sort()
        latest_close = -1
        for opens, closes, i in spans:
            if opens < latest_close:
                c.warning(
                    f"business_hours.windows[{i}]",
                    "OPENING_WINDOWS_OVERLAP",
                    f"Opening window {i + 1} overlaps another window on the same day.",
                )
            latest_close = max(latest_close, closes)


def _check_messages(c: _Collector, config: resources_pb2.AgentConfig) -> None:
    if not config.fallback_message.strip():
        c.warning(
            "fallback_message",
            "FALLBACK_MESSAGE_EMPTY",
            "There is no fallback message for when the agent cannot help.",
        )
    c.text("fallback_message", config.fallback_message, "The fallback message")
    if config.greetings.after_hours_message.strip() and not config.business_hours.windows:
        c.warning(
            "greetings.after_hours_message",
            "AFTER_HOURS_WITHOUT_BUSINESS_HOURS",
            "An after-hours message is set but no business hours are, so it is never played.",
        )
    pronunciations = config.pronunciations
    if c.count("pronunciations", len(pronunciations), "pronunciations", MAX_PRONUNCIATIONS):
        for word in sorted(pronunciations):
            spoken = pronunciations[word]
            path = f"pronunciations[{_quote(word[:MAX_STRING_CHARS])}]"
            if not word.strip():
                c.error(path, "PRONUNCIATION_WORD_EMPTY", "A pronunciation has no word.")
            elif not spoken.strip():
                c.error(path, "PRONUNCIATION_EMPTY", f"The word {word[:40]!r} has no spoken form.")
            if len(word) > MAX_STRING_CHARS or len(spoken) > MAX_STRING_CHARS:
                c.text(path, word + spoken, "A pronunciation")


_SECTIONS = (
    _check_greetings,
    _check_voice,
    _check_personality,
    _check_tools,
    _check_knowledge,
    _check_flow,
    _check_business_hours,
    _check_messages,
)


def check_config(config: resources_pb2.AgentConfig) -> list[Finding]:
    """Run the whole checklist; return errors and warnings in a stable order."""
    c = _Collector()
    size = config.ByteSize()
    if size > MAX_CONFIG_BYTES:
        c.error(
            "",
            "CONFIG_TOO_LARGE",
            f"The configuration is {_kib(size)}; the limit is {_kib(MAX_CONFIG_BYTES)}. Shorten the knowledge base.",
        )
    for section in _SECTIONS:
        section(c, config)
    return c.findings
