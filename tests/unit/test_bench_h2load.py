"""bench/h2load.py: the gRPC frame it sends and how it reads h2load's summary and request log."""

from __future__ import annotations

import struct

import pytest

from bench import h2load

# Printed by h2load (nghttp2 1.52) for a 5 s closed-loop run; trimmed to the lines it reads and
# their neighbours.
OUTPUT = """\
finished in 5.00s, 2728.00 req/s, 764.72KB/s
requests: 13645 total, 13704 started, 13645 done, 13640 succeeded, 5 failed, 2 errored, 0 timeout
status codes: 13640 2xx, 0 3xx, 0 4xx, 3 5xx
"""


def test_grpc_frame_is_an_uncompressed_length_prefixed_message() -> None:
    frame = h2load.grpc_frame(b"hello")
    assert frame[0] == 0
    assert struct.unpack(">I", frame[1:5]) == (5,)
    assert frame[5:] == b"hello"


def test_parse_reads_counts_duration_and_the_latency_of_each_2xx_answer() -> None:
    log = "1700000000000000\t200\t1500\n1700000000000100\t200\t2500\n1700000000000200\t503\t900\n"
    summary = h2load.parse(OUTPUT, log)
    assert summary.seconds == 5.0
    assert summary.succeeded == 13640
    assert summary.failed == 5  # 3 HTTP 5xx + 2 errored: h2load counts those among the failed
    assert summary.in_flight == 13704 - 13645
    assert summary.latencies_s == [0.0015, 0.0025]  # the 503 is not an answer


def test_parse_refuses_output_that_is_not_a_summary() -> None:
    with pytest.raises(ValueError, match="not an h2load summary"):
        h2load.parse("h2load: unrecognized option '--bogus'\n", "")
