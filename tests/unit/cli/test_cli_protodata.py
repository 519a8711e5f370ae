"""Configs as YAML/JSON data, and setting one field by its path."""

from __future__ import annotations

import pytest
import yaml
from google.protobuf import timestamp_pb2

from speako.cli.drafts import draft_from_data
from speako.cli.protodata import (
    DataError,
    config_from_data,
    config_with_field,
    flatten,
    message_to_dict,
    resolve_path,
    to_yaml,
)
from speako.config.v1 import resources_pb2 as res
from tests.factories import valid_config


def test_yaml_round_trip_keeps_the_config():
    config = valid_config()
    text = to_yaml(message_to_dict(config))
    assert config_from_data(yaml.safe_load(text)) == config


def test_output_uses_field_names_enum_names_and_real_integers():
    version = res.Version(name="tenants/a/agents/b/versions/7", number=7, config=valid_config())
    data = message_to_dict(version)
    assert data["number"] == 7
    assert data["config"]["personality"]["tone"] == "TONE_FRIENDLY"
    assert data["config"]["greetings"]["opening_greeting"].startswith("Thanks")
    ts = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    assert message_to_dict(res.Agent(create_time=ts))["create_time"] == "2023-11-14T22:13:20Z"


def test_input_accepts_short_enum_names():
    config = config_from_data({"personality": {"tone": "friendly"}, "tools": [{"id": "x", "type": "webhook"}]})
    assert config.personality.tone == res.Personality.TONE_FRIENDLY
    assert config.tools[0].type == res.Tool.TYPE_WEBHOOK


def test_unknown_field_in_a_file_is_named():
    with pytest.raises(DataError, match="greting"):
        config_from_data({"greetings": {"opening_greting": "hi"}})
    with pytest.raises(DataError, match="not one of"):
        config_from_data({"personality": {"tone": "grumpy"}})
    with pytest.raises(DataError, match="mapping"):
        config_from_data(["not", "a", "mapping"])


def test_set_a_text_field_verbatim():
    config = config_with_field("greetings.opening_greeting", "Hi, thanks for calling {business_name}: 1, 2")
    assert config.greetings.opening_greeting == "Hi, thanks for calling {business_name}: 1, 2"
    assert not config.HasField("voice")


def test_set_enum_bool_list_map_and_section():
    assert config_with_field("personality.tone", "professional").personality.tone == res.Personality.TONE_PROFESSIONAL
    assert config_with_field("personality.tone", "TONE_CASUAL").personality.tone == res.Personality.TONE_CASUAL
    langs = config_with_field("voice.additional_languages", "[es-MX, fr-CA]").voice.additional_languages
    assert list(langs) == ["es-MX", "fr-CA"]
    assert list(config_with_field("voice.additional_languages", "es-MX, fr-CA").voice.additional_languages) == [
        "es-MX",
        "fr-CA",
    ]
    assert dict(config_with_field("pronunciations", '{"Speako": "speak-oh"}').pronunciations) == {"Speako": "speak-oh"}
    tools = config_with_field("tools", '[{"id": "t", "type": "TRANSFER_CALL", "enabled": true}]').tools
    assert tools[0].type == res.Tool.TYPE_TRANSFER_CALL and tools[0].enabled
    hours = config_with_field("business_hours", "time_zone: Europe/Paris").business_hours
    assert hours.time_zone == "Europe/Paris"


def test_clearing_leaves_the_field_unset():
    assert config_with_field("greetings.opening_greeting", None) == res.AgentConfig()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("greetings.opening_greting", "did you mean 'greetings.opening_greeting'"),
        ("greeting", "AgentConfig has no field 'greeting'"),
        ("tools.id", "tools is a list"),
        ("fallback_message.x", "fallback_message is a single value"),
        ("", "empty"),
    ],
)
def test_bad_field_paths_are_explained(path, expected):
    with pytest.raises(DataError, match=expected):
        resolve_path(path)


def test_bad_values_are_explained():
    with pytest.raises(DataError, match="not one of"):
        config_with_field("personality.tone", "grumpy")
    with pytest.raises(DataError, match="takes a list"):
        config_with_field("tools", "{id: x}")
    with pytest.raises(DataError, match="mapping"):
        config_with_field("pronunciations", "[a]")
    with pytest.raises(DataError, match="not valid YAML"):
        config_with_field("tools", "[unclosed")


def test_draft_file_with_etag_is_a_conditional_write():
    data = {"name": "tenants/a/agents/b/draft", "etag": "7", "config": {"fallback_message": "Sorry"}}
    draft = draft_from_data(data, "tenants/a/agents/b/draft", use_etag=True)
    assert draft.etag == "7" and draft.config.fallback_message == "Sorry"
    assert draft_from_data(data, "tenants/a/agents/b/draft", use_etag=False).etag == ""
    bare = draft_from_data({"fallback_message": "Sorry"}, "tenants/a/agents/b/draft", use_etag=True)
    assert bare.etag == "" and bare.config.fallback_message == "Sorry"


def test_draft_file_of_another_agent_is_refused():
    with pytest.raises(DataError, match="not tenants/a/agents/b/draft"):
        draft_from_data({"name": "tenants/a/agents/c/draft", "config": {}}, "tenants/a/agents/b/draft", True)
    with pytest.raises(DataError, match="unknown draft field"):
        draft_from_data({"config": {}, "extra": 1}, "tenants/a/agents/b/draft", True)


def test_flatten_gives_one_row_per_leaf():
    rows = dict(flatten({"a": {"b": 1, "c": [2, {"d": 3}]}, "e": {}}))
    assert rows == {"a.b": 1, "a.c[0]": 2, "a.c[1].d": 3, "e": {}}


def test_responses_can_list_empty_repeated_fields():
    status = res.ValidationReport(name="tenants/a/agents/b/draft")
    assert message_to_dict(status) == {"name": "tenants/a/agents/b/draft"}
    assert message_to_dict(status, empty_lists=True) == {"name": "tenants/a/agents/b/draft", "violations": []}
