"""bench/cpp/watch.cc's protobuf wire parser (its ``decode`` mode) on messages built by protobuf."""

from __future__ import annotations

import subprocess

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bench import cpp_watch
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import resources_pb2 as ntf

pytestmark = pytest.mark.skipif(not cpp_watch.available(), reason="g++ and libgrpc++-dev are missing")


def _update(seconds: int, nanos: int, **fields: object) -> bytes:
    job = res.PublishJob(
        name="tenants/t/agents/a/publishJobs/j",
        version="tenants/t/agents/a/versions/7",
        state=res.PublishJob.STATE_PUBLISHED,
        attempts=2,
        changed_sections=["greeting", "voice"],
        create_time=Timestamp(seconds=seconds - 1),
        update_time=Timestamp(seconds=seconds, nanos=nanos),
        deadline=Timestamp(seconds=seconds + 300),
    )
    return ntf.PublishJobUpdate(job=job, **fields).SerializeToString()  # type: ignore[arg-type]


def _decode(messages: list[bytes]) -> list[str]:
    out = subprocess.run(
        [str(cpp_watch.binary()), "decode"],
        input="".join(m.hex() + "\n" for m in messages),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_the_update_time_is_read_to_the_microsecond_and_heartbeats_are_told_apart() -> None:
    # A double holds epoch seconds to about 0.2 us: printed to the microsecond, as bench.worker reads it.
    full = _update(1_764_720_000, 123_456_000, resume_token="opaque-position-42")
    lines = _decode(
        [
            full,
            _update(1_764_720_001, 0),
            _update(1_764_720_002, 5, heartbeat=True),
            ntf.PublishJobUpdate(resume_token="x").SerializeToString(),  # no job: the epoch
            _update(-5, 0),  # before the epoch: still a time, not a heartbeat
        ]
    )
    assert lines == ["1764720000.123456", "1764720001.000000", "heartbeat", "0.000000", "-5.000000"]


def test_malformed_bytes_are_undecodable_not_a_time() -> None:
    full = _update(1_764_720_000, 1)
    lines = _decode(
        [
            full[: len(full) - 3],  # cut inside the job
            b"\x0a\xff",  # a length past the end
            b"\x0b\x0c",  # a group (wire type 3): never sent by the notifier
            b"\x0d\x01\x02",  # a 4-byte field with 2 bytes
            b"\x80",  # an unfinished varint
        ]
    )
    assert lines == ["undecodable"] * 5
