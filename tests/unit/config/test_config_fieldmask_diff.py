"""Field-mask application, changed sections and the version diff."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.config.domain.canonical import content_sha256
from services.config.domain.diff import Change, changed_sections, diff_configs, normalized
from services.config.domain.fieldmask import UnknownFieldPath, apply_update_mask, validate_paths
from speako.config.v1 import resources_pb2 as r


def base() -> r.AgentConfig:
    return r.AgentConfig(
        greetings=r.Greetings(opening_greeting="Hi", recording_consent="Recorded"),
        voice=r.Voice(primary_language="en-US", additional_languages=["es"]),
        personality=r.Personality(prompt="Be kind", tone=r.Personality.Tone.TONE_CASUAL),
        tools=[r.Tool(id="a", type=r.Tool.Type.TYPE_END_CALL, enabled=True)],
        knowledge=r.Knowledge(faqs=[r.Faq(question="q1", answer="a1"), r.Faq(question="q2", answer="a2")]),
        pronunciations={"Nguyen": "win", "gif": "jif"},
    )


def test_empty_mask_and_star_replace_everything() -> None:
    update = r.AgentConfig(fallback_message="x")
    assert apply_update_mask(base(), update, []) == update
    assert apply_update_mask(base(), update, ["*"]) == update


def test_leaf_path_changes_only_that_field() -> None:
    update = r.AgentConfig(greetings=r.Greetings(opening_greeting="Hello", after_hours_message="ignored"))
    got = apply_update_mask(base(), update, ["greetings.opening_greeting"])
    expected = base()
    expected.greetings.opening_greeting = "Hello"
    assert got == expected


def test_message_path_replaces_the_whole_message() -> None:
    update = r.AgentConfig(greetings=r.Greetings(after_hours_message="Closed"))
    got = apply_update_mask(base(), update, ["greetings"])
    assert got.greetings == r.Greetings(after_hours_message="Closed")
    assert got.voice == base().voice


def test_lists_and_maps_are_replaced_not_merged() -> None:
    update = r.AgentConfig(
        knowledge=r.Knowledge(faqs=[r.Faq(question="only", answer="one")]),
        pronunciations={"gif": "gif"},
        voice=r.Voice(additional_languages=["fr", "de"]),
    )
    got = apply_update_mask(base(), update, ["knowledge.faqs", "pronunciations", "voice.additional_languages"])
    assert list(got.knowledge.faqs) == [r.Faq(question="only", answer="one")]
    assert dict(got.pronunciations) == {"gif": "gif"}
    assert list(got.voice.additional_languages) == ["fr", "de"]
    assert got.voice.primary_language == "en-US"


def test_path_absent_in_update_clears_the_field() -> None:
    got = apply_update_mask(base(), r.AgentConfig(), ["tools", "personality.prompt", "voice"])
    assert not got.tools and got.personality.prompt == "" and not got.HasField("voice")
    assert got.personality.tone == r.Personality.Tone.TONE_CASUAL


def test_apply_does_not_mutate_inputs() -> None:
    current, update = base(), r.AgentConfig(fallback_message="x")
    apply_update_mask(current, update, ["fallback_message", "tools"])
    assert current == base() and update == r.AgentConfig(fallback_message="x")


@pytest.mark.parametrize(
    ("paths", "bad_index", "bad_path"),
    [
        (["greetings", "greeting"], 1, "greeting"),
        (["greetings.opening"], 0, "greetings.opening"),
        (["tools.id"], 0, "tools.id"),
        (["greetings.opening_greeting.x"], 0, "greetings.opening_greeting.x"),
        (["pronunciations.gif"], 0, "pronunciations.gif"),
        ([""], 0, ""),
        (["*", "greetings"], 0, "*"),
    ],
)
def test_unknown_paths_are_named(paths: list[str], bad_index: int, bad_path: str) -> None:
    with pytest.raises(UnknownFieldPath) as info:
        apply_update_mask(base(), r.AgentConfig(), paths)
    assert (info.value.index, info.value.path) == (bad_index, bad_path)
    assert repr(bad_path) in str(info.value)


def test_every_top_level_and_nested_scalar_path_is_accepted() -> None:
    paths = [f.name for f in r.AgentConfig.DESCRIPTOR.fields] + [
        "greetings.after_hours_message",
        "flow.start_node_id",
        "flow.nodes",
        "business_hours.windows",
        "knowledge.articles",
    ]
    assert len(validate_paths(paths)) == len(paths)


def test_changed_sections() -> None:
    new = base()
    new.greetings.opening_greeting = "Hey"
    new.pronunciations["x"] = "y"
    assert changed_sections(base(), new) == ["greetings", "pronunciations"]
    assert changed_sections(base(), base()) == []
    assert changed_sections(None, base()) == [
        "greetings",
        "voice",
        "personality",
        "tools",
        "knowledge",
        "pronunciations",
    ]


def test_diff_lists_leaf_paths_with_json_values() -> None:
    target = base()
    target.greetings.opening_greeting = "Hey"
    target.greetings.ClearField("recording_consent")
    target.voice.additional_languages.append("fr")
    target.personality.tone = r.Personality.Tone.TONE_FRIENDLY
    target.knowledge.faqs[1].answer = "A2"
    target.knowledge.faqs.add(question="q3", answer="a3")
    del target.pronunciations["gif"]
    target.pronunciations["new"] = "nu"
    target.fallback_message = "Sorry"
    assert diff_configs(base(), target) == [
        Change("greetings.opening_greeting", '"Hi"', '"Hey"'),
        Change("greetings.recording_consent", '"Recorded"', ""),
        Change("voice.additional_languages", '["es"]', '["es","fr"]'),
        Change("personality.tone", '"TONE_CASUAL"', '"TONE_FRIENDLY"'),
        Change("knowledge.faqs[1].answer", '"a2"', '"A2"'),
        Change("knowledge.faqs[2]", "", '{"answer":"a3","question":"q3"}'),
        Change("fallback_message", "", '"Sorry"'),
        Change('pronunciations["gif"]', '"jif"', ""),
        Change('pronunciations["new"]', "", '"nu"'),
    ]
    assert diff_configs(base(), base()) == []


def test_set_but_empty_section_counts_as_changed_like_the_content_hash() -> None:
    unset, empty = r.AgentConfig(), r.AgentConfig(greetings=r.Greetings())
    assert content_sha256(unset) != content_sha256(empty)
    assert changed_sections(unset, empty) == ["greetings"]
    assert diff_configs(unset, empty) == [Change("greetings", "", "{}")]
    assert normalized(empty) == unset and normalized(base()) == base()


_configs = st.builds(
    r.AgentConfig,
    # None leaves a section unset, which differs from set-but-empty in the canonical form.
    greetings=st.none() | st.builds(r.Greetings, opening_greeting=st.text(max_size=3)),
    voice=st.none() | st.builds(r.Voice, additional_languages=st.lists(st.sampled_from(["a", "b"]), max_size=2)),
    tools=st.lists(st.builds(r.Tool, id=st.sampled_from(["", "x"]), enabled=st.booleans()), max_size=2),
    fallback_message=st.sampled_from(["", "f"]),
    pronunciations=st.dictionaries(st.sampled_from(["k", "j"]), st.sampled_from(["", "v"]), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(_configs, _configs)
def test_diff_is_empty_exactly_when_content_hash_matches(a: r.AgentConfig, b: r.AgentConfig) -> None:
    changes = diff_configs(a, b)
    assert (changes == []) == (content_sha256(a) == content_sha256(b))
    assert (changed_sections(a, b) == []) == (changes == [])
    # Every change's top-level section is reported as a changed section, and values parse as JSON.
    sections = set(changed_sections(a, b))
    for change in changes:
        assert change.field.split(".")[0].split("[")[0] in sections
        for value in (change.base_value, change.target_value):
            if value:
                json.loads(value)
    # The diff is symmetric: swapping sides swaps the values.
    assert diff_configs(b, a) == [Change(c.field, c.target_value, c.base_value) for c in changes]
