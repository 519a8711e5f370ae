"""Fixtures of the security suite: one platform of real processes shared by its modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.security_support import GENERATED_CASES, KNOWN_DEFECT_HITS, SecurityPlatform, start_platform

# A small per-tenant stream cap (the limit test opens this many) and quick heartbeats, so stream
# calls of the matrix return promptly.
STREAM_CAP = 24


@pytest.fixture(scope="session")
def secure_platform(vhost_pool, tmp_path_factory) -> Iterator[SecurityPlatform]:
    """The four services as separate processes, started once for the security suite (startup
    costs ~10-25 s under load; one start keeps the suite inside its time budget)."""
    with vhost_pool.lease() as vhost:
        yield from start_platform(
            vhost,
            tmp_path_factory.mktemp("security-logs"),
            SPEAKO_NOTIFIER_MAX_STREAMS_PER_TENANT=str(STREAM_CAP),
            SPEAKO_NOTIFIER_HEARTBEAT_S="0.5",
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print how many generated cases the property tests ran per RPC."""
    if not GENERATED_CASES:
        return
    terminalreporter.section("security: generated cases per RPC")
    for method, count in sorted(GENERATED_CASES.items()):
        terminalreporter.write_line(f"{count:6d}  {method}")
    terminalreporter.write_line(f"{sum(GENERATED_CASES.values()):6d}  total")
    if KNOWN_DEFECT_HITS:
        terminalreporter.section("security: cases that hit known open service defects (not failures)")
        for defect, count in sorted(KNOWN_DEFECT_HITS.items()):
            terminalreporter.write_line(f"{count:6d}  {defect}")
