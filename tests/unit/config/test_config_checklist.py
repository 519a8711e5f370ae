"""The pre-launch checklist: every rule of DESIGN.md section 3, errors and warnings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.config.domain import checklist
from services.config.domain.checklist import Finding, Severity, check_config, has_errors
from services.config.domain.templates import template_problems
from speako.config.v1 import resources_pb2 as r

Tool = r.Tool.Type
Node = r.FlowNode.Type


def valid_config() -> r.AgentConfig:
    """A config with no findings at all."""
    return r.AgentConfig(
        greetings=r.Greetings(
            opening_greeting="Thanks for calling {business_name}, this is {agent_name}.",
            after_hours_message="We are closed, {caller_name}.",
            returning_customer_greeting="Welcome back {caller_name}!",
            recording_consent="This call may be recorded.",
        ),
        voice=r.Voice(voice_id="aria", primary_language="en-US", additional_languages=["es-MX", "zh-Hant-TW"]),
        personality=r.Personality(name="Ava", tone=r.Personality.Tone.TONE_FRIENDLY, prompt="Be helpful."),
        tools=[
            r.Tool(id="desk", type=Tool.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550123"),
            r.Tool(id="crm", type=Tool.TYPE_WEBHOOK, enabled=True, url="https://example.com/hook?x=1"),
        ],
        knowledge=r.Knowledge(
            faqs=[r.Faq(question="Open on Sunday?", answer="No.")],
            articles=[r.Article(title="Parking", body="Free parking behind the shop.")],
        ),
        flow=r.Flow(
            start_node_id="start",
            nodes=[
                r.FlowNode(id="start", type=Node.TYPE_START, next_node_ids=["ask"]),
                r.FlowNode(id="ask", type=Node.TYPE_ASK, prompt="How can I help?", next_node_ids=["hook", "xfer"]),
                r.FlowNode(id="hook", type=Node.TYPE_TOOL, tool_id="crm", next_node_ids=["bye"]),
                r.FlowNode(id="xfer", type=Node.TYPE_TRANSFER, tool_id="desk"),
                r.FlowNode(id="bye", type=Node.TYPE_END_CALL),
            ],
        ),
        business_hours=r.BusinessHours(
            time_zone="America/New_York",
            windows=[
                r.OpeningWindow(
                    day=r.OpeningWindow.DayOfWeek.DAY_OF_WEEK_MONDAY, open_time="09:00", close_time="12:00"
                ),
                r.OpeningWindow(
                    day=r.OpeningWindow.DayOfWeek.DAY_OF_WEEK_MONDAY, open_time="13:00", close_time="24:00"
                ),
            ],
        ),
        fallback_message="Sorry, let me take a message.",
        pronunciations={"Nguyen": "win"},
    )


def codes(config: r.AgentConfig) -> dict[str, tuple[str, Severity]]:
    """field -> (code, severity); fails when a field has two findings (keeps tests precise)."""
    out: dict[str, tuple[str, Severity]] = {}
    for f in check_config(config):
        assert f.field not in out, f"two findings on {f.field}: {out[f.field]} and {f.code}"
        out[f.field] = (f.code, f.severity)
    return out


def only(config: r.AgentConfig) -> Finding:
    findings = check_config(config)
    assert len(findings) == 1, findings
    return findings[0]


def test_valid_config_has_no_findings() -> None:
    assert check_config(valid_config()) == []
    assert not has_errors([])


def test_finding_is_frozen_and_has_errors_distinguishes_severity() -> None:
    warn = Finding("x", "C", "m", Severity.WARNING)
    err = Finding("x", "C", "m", Severity.ERROR)
    with pytest.raises(AttributeError):
        warn.code = "D"  # type: ignore[misc]
    assert not has_errors([warn])
    assert has_errors([warn, err])


# --- greetings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello {business_name}", []),
        ("{agent_name}{caller_name}", []),
        ("No placeholders at all", []),
        ("Hi {name}", ["GREETING_UNKNOWN_PLACEHOLDER"]),
        ("Hi {}", ["GREETING_UNKNOWN_PLACEHOLDER"]),
        ("Hi { business_name }", ["GREETING_UNKNOWN_PLACEHOLDER"]),
        ("Hi {business_name", ["GREETING_UNBALANCED_BRACE"]),
        ("Hi business_name}", ["GREETING_UNBALANCED_BRACE"]),
        ("Hi {{business_name}}", ["GREETING_UNBALANCED_BRACE", "GREETING_UNBALANCED_BRACE"]),
        ("{a} and {b", ["GREETING_UNKNOWN_PLACEHOLDER", "GREETING_UNBALANCED_BRACE"]),
    ],
)
def test_template_problems(text: str, expected: list[str]) -> None:
    assert [p.code for p in template_problems(text)] == expected


@given(st.text(alphabet=st.sampled_from("ab {}_"), max_size=30))
def test_template_without_braces_or_with_known_placeholders_is_clean(text: str) -> None:
    problems = template_problems(text)
    if "{" not in text and "}" not in text:
        assert problems == []
    stripped = text
    for name in ("business_name", "agent_name", "caller_name"):
        stripped = stripped.replace("{" + name + "}", "")
    # Every brace left after removing the known placeholders is reported somewhere.
    assert bool(problems) == ("{" in stripped or "}" in stripped)


@pytest.mark.parametrize(
    "field", ["opening_greeting", "after_hours_message", "returning_customer_greeting", "recording_consent"]
)
def test_bad_template_in_each_greeting_is_an_error(field: str) -> None:
    config = valid_config()
    setattr(config.greetings, field, "Hello {customer}")
    f = only(config)
    assert (f.field, f.code, f.severity) == (
        f"greetings.{field}",
        "GREETING_UNKNOWN_PLACEHOLDER",
        Severity.ERROR,
    )
    assert "{customer}" in f.message and "{business_name}" in f.message


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_opening_greeting_is_an_error(text: str) -> None:
    config = valid_config()
    config.greetings.opening_greeting = text
    assert codes(config) == {"greetings.opening_greeting": ("GREETING_OPENING_EMPTY", Severity.ERROR)}


def test_after_hours_message_without_business_hours_is_a_warning() -> None:
    config = valid_config()
    config.ClearField("business_hours")
    assert codes(config) == {"greetings.after_hours_message": ("AFTER_HOURS_WITHOUT_BUSINESS_HOURS", Severity.WARNING)}


# --- voice and personality ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["en", "en-US", "es-419", "zh-Hant-TW", "de-CH-1996", "zh-cmn-Hans-CN", "yue-HK", "en-US-x-twain"]
)
def test_valid_language_tags(tag: str) -> None:
    assert checklist.is_language_tag(tag)


@pytest.mark.parametrize(
    "tag", ["", "english", "en_US", "e", "en-", "en-USA1", "123", "en--US", "x-klingon", "en-US\n"]
)
def test_invalid_language_tags(tag: str) -> None:
    assert not checklist.is_language_tag(tag)


def test_invalid_primary_and_additional_language_are_errors() -> None:
    config = valid_config()
    config.voice.primary_language = "English"
    config.voice.additional_languages[1] = "fr_FR"
    assert codes(config) == {
        "voice.primary_language": ("LANGUAGE_INVALID", Severity.ERROR),
        "voice.additional_languages[1]": ("LANGUAGE_INVALID", Severity.ERROR),
    }


def test_missing_primary_language_is_an_error_and_duplicates_a_warning() -> None:
    config = valid_config()
    config.voice.additional_languages.append("ES-mx")
    assert codes(config) == {"voice.additional_languages[2]": ("LANGUAGE_DUPLICATE", Severity.WARNING)}
    config.voice.primary_language = ""
    assert codes(config)["voice.primary_language"] == ("LANGUAGE_MISSING", Severity.ERROR)


def test_empty_personality_prompt_is_an_error() -> None:
    config = valid_config()
    config.personality.prompt = " "
    assert codes(config) == {"personality.prompt": ("PERSONALITY_PROMPT_EMPTY", Severity.ERROR)}


# --- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["4155550123", "+0415555", "+1 415 555 0123", "+1234567890123456", "", "+1", "+14155550123\n"]
)
def test_transfer_number_not_e164_is_an_error(number: str) -> None:
    config = valid_config()
    config.tools[0].transfer_number = number
    got = codes(config)
    assert got["tools[0].transfer_number"] == ("TOOL_TRANSFER_NUMBER_INVALID", Severity.ERROR)
    # The only transfer tool is broken, so the flow's transfer step has nobody to call either.
    assert got["tools"] == ("NO_TRANSFER_TOOL", Severity.WARNING)


def test_disabled_tool_defects_are_warnings() -> None:
    config = valid_config()
    config.tools.append(r.Tool(id="old", type=Tool.TYPE_WEBHOOK, enabled=False, url="http://x.example"))
    assert codes(config) == {"tools[2].url": ("TOOL_WEBHOOK_URL_NOT_HTTPS", Severity.WARNING)}


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "TOOL_WEBHOOK_URL_NOT_HTTPS"),
        ("ftp://example.com/hook", "TOOL_WEBHOOK_URL_NOT_HTTPS"),
        ("", "TOOL_WEBHOOK_URL_INVALID"),
        ("https://", "TOOL_WEBHOOK_URL_INVALID"),
        ("example.com/hook", "TOOL_WEBHOOK_URL_INVALID"),
        ("https://exa mple.com", "TOOL_WEBHOOK_URL_INVALID"),
    ],
)
def test_webhook_url_must_be_https(url: str, code: str) -> None:
    config = valid_config()
    config.tools[1].url = url
    assert codes(config) == {"tools[1].url": (code, Severity.ERROR)}


def test_tool_ids_must_exist_and_be_unique_and_type_set() -> None:
    config = valid_config()
    config.tools.append(r.Tool(id="crm", type=Tool.TYPE_END_CALL, enabled=True))
    config.tools.append(r.Tool(id="", type=Tool.TYPE_UNSPECIFIED, enabled=True))
    assert codes(config) == {
        "tools[2].id": ("TOOL_DUPLICATE_ID", Severity.ERROR),
        "tools[3].id": ("TOOL_ID_MISSING", Severity.ERROR),
        "tools[3].type": ("TOOL_TYPE_MISSING", Severity.ERROR),
    }


def test_no_enabled_transfer_tool_is_a_warning() -> None:
    config = valid_config()
    config.tools[0].enabled = False
    got = codes(config)
    assert got["tools"] == ("NO_TRANSFER_TOOL", Severity.WARNING)
    assert got["flow.nodes[3].tool_id"] == ("FLOW_TOOL_DISABLED", Severity.ERROR)


# --- knowledge, messages, hours ----------------------------------------------------------------


def test_empty_knowledge_base_is_a_warning_and_incomplete_entries_errors() -> None:
    config = valid_config()
    config.knowledge.Clear()
    assert codes(config) == {"knowledge": ("KNOWLEDGE_EMPTY", Severity.WARNING)}
    config.knowledge.faqs.add(question="Q?", answer="")
    config.knowledge.articles.add(title="", body="text")
    config.knowledge.articles.add(title="T", body=" ")
    assert codes(config) == {
        "knowledge.faqs[0].answer": ("FAQ_ANSWER_EMPTY", Severity.ERROR),
        "knowledge.articles[0].title": ("ARTICLE_TITLE_EMPTY", Severity.WARNING),
        "knowledge.articles[1].body": ("ARTICLE_BODY_EMPTY", Severity.ERROR),
    }


def test_empty_fallback_message_is_a_warning() -> None:
    config = valid_config()
    config.fallback_message = ""
    assert codes(config) == {"fallback_message": ("FALLBACK_MESSAGE_EMPTY", Severity.WARNING)}


def test_business_hours_rules() -> None:
    config = valid_config()
    config.business_hours.time_zone = "Mars/Olympus"
    w = config.business_hours.windows
    w[0].close_time = "08:00"
    w.add(day=r.OpeningWindow.DayOfWeek.DAY_OF_WEEK_MONDAY, open_time="14:00", close_time="15:00")
    w.add(open_time="9am", close_time="10:00")
    assert codes(config) == {
        "business_hours.time_zone": ("TIME_ZONE_INVALID", Severity.ERROR),
        "business_hours.windows[0]": ("OPENING_WINDOW_EMPTY", Severity.ERROR),
        "business_hours.windows[2]": ("OPENING_WINDOWS_OVERLAP", Severity.WARNING),
        "business_hours.windows[3].day": ("OPENING_WINDOW_DAY_MISSING", Severity.ERROR),
        "business_hours.windows[3].open_time": ("OPENING_WINDOW_TIME_INVALID", Severity.ERROR),
    }
    config.business_hours.time_zone = ""
    assert codes(config)["business_hours.time_zone"] == ("TIME_ZONE_MISSING", Severity.ERROR)


@pytest.mark.parametrize("key", ["America/New_York", "UTC", "Europe/Berlin"])
def test_known_time_zones(key: str) -> None:
    assert checklist.is_time_zone(key)


@pytest.mark.parametrize("key", ["America", "../etc/passwd", "localtime", "", "Not A Zone"])
def test_unknown_time_zones(key: str) -> None:
    assert not checklist.is_time_zone(key)


def test_pronunciations_need_word_and_spoken_form() -> None:
    config = valid_config()
    config.pronunciations["gyro"] = ""
    config.pronunciations[" "] = "x"
    assert codes(config) == {
        'pronunciations["gyro"]': ("PRONUNCIATION_EMPTY", Severity.ERROR),
        'pronunciations[" "]': ("PRONUNCIATION_WORD_EMPTY", Severity.ERROR),
    }


# --- size limits -------------------------------------------------------------------------------


def test_one_string_limit_names_the_field_and_the_limit() -> None:
    config = valid_config()
    config.knowledge.faqs[0].answer = "a" * (checklist.MAX_STRING_CHARS + 1)
    f = only(config)
    assert (f.field, f.code, f.severity) == ("knowledge.faqs[0].answer", "STRING_TOO_LONG", Severity.ERROR)
    assert "10,001" in f.message and "10,000" in f.message


def test_long_greeting_reports_length_not_template_noise() -> None:
    config = valid_config()
    config.greetings.opening_greeting = "{" * (checklist.MAX_STRING_CHARS + 5)
    assert codes(config) == {"greetings.opening_greeting": ("STRING_TOO_LONG", Severity.ERROR)}


def test_article_limit_counts_utf8_bytes() -> None:
    config = valid_config()
    # Each euro sign is three bytes: under the limit in characters, over it in bytes.
    config.knowledge.articles[0].body = "€" * (checklist.MAX_ARTICLE_BYTES // 3 + 1)
    f = only(config)
    assert (f.field, f.code) == ("knowledge.articles[0].body", "ARTICLE_TOO_LARGE")
    assert "512 KiB" in f.message


def test_list_length_limits() -> None:
    config = valid_config()
    for _ in range(checklist.MAX_TOOLS):
        config.tools.add(id=f"t{_}", type=Tool.TYPE_END_CALL, enabled=True)
    f = only(config)
    assert (f.field, f.code) == ("tools", "TOO_MANY_ITEMS")
    assert f"{checklist.MAX_TOOLS + 2}" in f.message and f"limit is {checklist.MAX_TOOLS}" in f.message


def test_whole_config_limit_on_a_large_knowledge_base() -> None:
    config = valid_config()
    body = "lorem ipsum " * 40_000  # 480 KB
    for i in range(12):
        config.knowledge.articles.add(title=f"a{i}", body=body)
    assert check_config(config) == []  # ~5.8 MB is within the limit
    for i in range(6):
        config.knowledge.articles.add(title=f"b{i}", body=body)
    f = only(config)
    assert (f.field, f.code) == ("", "CONFIG_TOO_LARGE")
    assert "MiB" in f.message


# --- flow --------------------------------------------------------------------------------------


def flow_config(start: str, *nodes: r.FlowNode) -> r.AgentConfig:
    config = valid_config()
    config.flow.CopyFrom(r.Flow(start_node_id=start, nodes=list(nodes)))
    return config


def say(node_id: str, *nxt: str) -> r.FlowNode:
    return r.FlowNode(id=node_id, type=Node.TYPE_SAY, prompt="hi", next_node_ids=list(nxt))


def end(node_id: str) -> r.FlowNode:
    return r.FlowNode(id=node_id, type=Node.TYPE_END_CALL)


def test_no_flow_at_all_is_fine() -> None:
    config = valid_config()
    config.ClearField("flow")
    assert check_config(config) == []


def test_flow_start_missing_or_unknown() -> None:
    assert codes(flow_config("", say("a", "b"), end("b"))) == {
        "flow.start_node_id": ("FLOW_START_MISSING", Severity.ERROR)
    }
    assert codes(flow_config("zzz", say("a", "b"), end("b"))) == {
        "flow.start_node_id": ("FLOW_START_NOT_FOUND", Severity.ERROR)
    }
    assert codes(flow_config("a")) == {"flow.start_node_id": ("FLOW_START_NOT_FOUND", Severity.ERROR)}


def test_orphan_nodes() -> None:
    got = codes(flow_config("a", say("a", "b"), end("b"), say("lost", "b"), say("lost2", "lost")))
    assert got == {
        "flow.nodes[2]": ("FLOW_ORPHAN_NODE", Severity.ERROR),
        "flow.nodes[3]": ("FLOW_ORPHAN_NODE", Severity.ERROR),
    }


def test_dead_end_and_nodes_leading_only_to_it() -> None:
    got = codes(flow_config("a", say("a", "b", "c"), end("b"), say("c", "d"), say("d")))
    assert got == {
        "flow.nodes[2]": ("FLOW_NO_EXIT", Severity.ERROR),
        "flow.nodes[3]": ("FLOW_DEAD_END", Severity.ERROR),
    }


def test_cycle_without_exit_but_cycle_with_exit_is_fine() -> None:
    trapped = flow_config("a", say("a", "b", "x"), say("b", "c"), say("c", "b"), end("x"))
    assert codes(trapped) == {
        "flow.nodes[1]": ("FLOW_NO_EXIT", Severity.ERROR),
        "flow.nodes[2]": ("FLOW_NO_EXIT", Severity.ERROR),
    }
    looping_with_exit = flow_config("a", say("a", "b"), say("b", "a", "x"), end("x"))
    assert check_config(looping_with_exit) == []


def test_duplicate_ids_and_dangling_next_and_missing_type() -> None:
    got = codes(
        flow_config(
            "a",
            say("a", "b", "ghost"),
            end("b"),
            say("a", "b"),
            r.FlowNode(id="t", next_node_ids=["b"]),
            r.FlowNode(type=Node.TYPE_SAY, prompt="x"),
        )
    )
    assert got == {
        "flow.nodes[0].next_node_ids[1]": ("FLOW_NEXT_NOT_FOUND", Severity.ERROR),
        "flow.nodes[2]": ("FLOW_DUPLICATE_NODE_ID", Severity.ERROR),
        "flow.nodes[3].type": ("FLOW_NODE_TYPE_MISSING", Severity.ERROR),
        "flow.nodes[3]": ("FLOW_ORPHAN_NODE", Severity.ERROR),
        "flow.nodes[4].id": ("FLOW_NODE_ID_MISSING", Severity.ERROR),
    }


def test_tool_and_transfer_nodes_need_their_tools() -> None:
    got = codes(
        flow_config(
            "a",
            say("a", "t1", "t2", "t3", "x"),
            r.FlowNode(id="t1", type=Node.TYPE_TOOL, next_node_ids=["e"]),
            r.FlowNode(id="t2", type=Node.TYPE_TOOL, tool_id="nope", next_node_ids=["e"]),
            r.FlowNode(id="t3", type=Node.TYPE_TOOL, tool_id="crm", next_node_ids=["e"]),
            r.FlowNode(id="x", type=Node.TYPE_TRANSFER, tool_id="crm"),
            end("e"),
        )
    )
    assert got == {
        "flow.nodes[1].tool_id": ("FLOW_TOOL_MISSING", Severity.ERROR),
        "flow.nodes[2].tool_id": ("FLOW_TOOL_NOT_FOUND", Severity.ERROR),
        "flow.nodes[4].tool_id": ("FLOW_TOOL_NOT_FOUND", Severity.ERROR),
    }
    config = flow_config("a", say("a", "x"), r.FlowNode(id="x", type=Node.TYPE_TRANSFER))
    config.tools[0].enabled = False
    assert codes(config)["flow.nodes[1]"] == ("FLOW_TRANSFER_WITHOUT_TOOL", Severity.ERROR)


def test_steps_only_after_an_end_are_orphans() -> None:
    got = codes(
        flow_config(
            "a",
            say("a", "e"),
            r.FlowNode(id="e", type=Node.TYPE_END_CALL, next_node_ids=["after"]),
            say("after", "e"),
        )
    )
    assert got == {
        "flow.nodes[1].next_node_ids": ("FLOW_STEPS_AFTER_END", Severity.WARNING),
        "flow.nodes[2]": ("FLOW_ORPHAN_NODE", Severity.ERROR),
    }


def test_start_type_and_prompts_and_steps_after_end() -> None:
    got = codes(
        flow_config(
            "a",
            say("a", "s", "q"),
            r.FlowNode(id="s", type=Node.TYPE_START, next_node_ids=["e"]),
            r.FlowNode(id="q", type=Node.TYPE_ASK, next_node_ids=["e"]),
            r.FlowNode(id="e", type=Node.TYPE_END_CALL, next_node_ids=["q"]),
        )
    )
    assert got == {
        "flow.nodes[1]": ("FLOW_EXTRA_START", Severity.ERROR),
        "flow.nodes[2].prompt": ("FLOW_NODE_PROMPT_EMPTY", Severity.ERROR),
        "flow.nodes[3].next_node_ids": ("FLOW_STEPS_AFTER_END", Severity.WARNING),
    }


# --- properties of the flow analysis -----------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[r.FlowNode], str]:
    n = draw(st.integers(min_value=1, max_value=9))
    ids = [f"n{i}" for i in range(n)]
    nodes = []
    for node_id in ids:
        terminal = draw(st.booleans())
        nxt = [] if terminal else draw(st.lists(st.sampled_from(ids), max_size=3, unique=True))
        node_type = Node.TYPE_END_CALL if terminal else Node.TYPE_SAY
        nodes.append(r.FlowNode(id=node_id, type=node_type, prompt="p", next_node_ids=nxt))
    return nodes, draw(st.sampled_from(ids))


def _reach(nodes: list[r.FlowNode], frm: str) -> set[str]:
    by_id = {n.id: n for n in nodes}
    seen, todo = {frm}, [frm]
    while todo:
        for nxt in by_id[todo.pop()].next_node_ids:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_flow_findings_match_a_brute_force_oracle(graph: tuple[list[r.FlowNode], str]) -> None:
    nodes, start = graph
    config = flow_config(start, *nodes)
    got = {f.field: f.code for f in check_config(config) if f.field.startswith("flow.nodes[")}
    from_start = _reach(nodes, start)
    expected = {}
    for i, node in enumerate(nodes):
        if node.id not in from_start:
            expected[f"flow.nodes[{i}]"] = "FLOW_ORPHAN_NODE"
        elif not any(
            nodes[j].type == Node.TYPE_END_CALL for j in range(len(nodes)) if nodes[j].id in _reach(nodes, node.id)
        ):
            expected[f"flow.nodes[{i}]"] = "FLOW_DEAD_END" if not node.next_node_ids else "FLOW_NO_EXIT"
    assert got == expected


# --- robustness --------------------------------------------------------------------------------

_text = st.text(max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        r.AgentConfig,
        greetings=st.builds(r.Greetings, opening_greeting=_text, after_hours_message=_text),
        voice=st.builds(r.Voice, primary_language=_text, additional_languages=st.lists(_text, max_size=3)),
        personality=st.builds(r.Personality, prompt=_text),
        tools=st.lists(
            st.builds(
                r.Tool,
                id=_text,
                type=st.sampled_from(list(Tool.values())),
                enabled=st.booleans(),
                transfer_number=_text,
                url=_text,
            ),
            max_size=4,
        ),
        flow=st.builds(
            r.Flow,
            start_node_id=_text,
            nodes=st.lists(
                st.builds(
                    r.FlowNode,
                    id=st.sampled_from(["", "a", "b", "c"]),
                    type=st.sampled_from(list(Node.values())),
                    tool_id=_text,
                    next_node_ids=st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3),
                ),
                max_size=5,
            ),
        ),
        business_hours=st.builds(
            r.BusinessHours,
            time_zone=_text,
            windows=st.lists(st.builds(r.OpeningWindow, open_time=_text, close_time=_text), max_size=3),
        ),
        pronunciations=st.dictionaries(_text, _text, max_size=3),
    )
)
def test_any_config_gets_well_formed_findings(config: r.AgentConfig) -> None:
    findings = check_config(config)
    assert findings == check_config(config)  # deterministic
    for f in findings:
        assert f.code and f.code.isupper() and f.message.endswith(".")
        assert isinstance(f.severity, Severity)
        root = f.field.split(".")[0].split("[")[0]
        assert root == "" or root in r.AgentConfig.DESCRIPTOR.fields_by_name
