"""chassis.memory: the fixed mmap threshold that keeps large transient buffers off the heap."""

from __future__ import annotations

import platform

import pytest

from chassis import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_release_large_buffers_is_accepted_by_glibc() -> None:
    assert memory.release_large_buffers() is True
    # Idempotent: services in one process (speako serve all) each call it.
    assert memory.release_large_buffers(memory.DEFAULT_MMAP_THRESHOLD) is True
