"""Small pieces of the notifier servicer and composition root (no servers)."""

from __future__ import annotations

import pytest

from chassis.errors import InvalidArgument, ResourceExhausted
from chassis.settings import SettingsError
from services.notifier.main import NotifierOptions
from services.notifier.servicer import StreamLimiter, _serializer, page_size
from speako.notifier.v1 import resources_pb2


def test_stream_limiter_caps_per_tenant_and_frees_slots():
    limiter = StreamLimiter(2)
    with limiter.hold("acme"), limiter.hold("acme"):
        with pytest.raises(ResourceExhausted):
            with limiter.hold("acme"):
                pass
        with limiter.hold("beta"):
            assert limiter.open_streams("beta") == 1
        assert limiter.open_streams("acme") == 2
    assert limiter.open_streams("acme") == 0
    with limiter.hold("acme"):
        assert limiter.open_streams("acme") == 1


def test_page_size_defaults_and_clamps():
    assert page_size(0) == 50
    assert page_size(7) == 7
    assert page_size(5000) == 1000
    with pytest.raises(InvalidArgument) as err:
        page_size(-1)
    assert err.value.field_violations == [("page_size", "must be >= 0")]


def test_options_from_env():
    options = NotifierOptions.from_env(
        {"SPEAKO_NOTIFIER_HEARTBEAT_S": "2.5", "SPEAKO_NOTIFIER_SUBSCRIBER_BUFFER": "64"}
    )
    assert options.heartbeat_s == 2.5 and options.subscriber_buffer == 64
    assert options.job_wait_s == NotifierOptions().job_wait_s
    with pytest.raises(SettingsError):
        NotifierOptions.from_env({"SPEAKO_NOTIFIER_HEARTBEAT_S": "soon"})
    with pytest.raises(SettingsError):
        NotifierOptions.from_env({"SPEAKO_NOTIFIER_MAX_STREAMS_PER_TENANT": "0"})


def test_stream_serializer_passes_pre_serialized_updates_through():
    serialize = _serializer(resources_pb2.PublishJobUpdate)
    update = resources_pb2.PublishJobUpdate(resume_token="abc", heartbeat=True)
    data = serialize(update)
    assert resources_pb2.PublishJobUpdate.FromString(data) == update
    assert serialize(data) is data
