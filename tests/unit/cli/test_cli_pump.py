"""The stream pump reopens streams without losing position, and gives up on a dead notifier."""

from __future__ import annotations

import queue
import time

import grpc

from speako.cli import follow


class _StreamError(grpc.RpcError, grpc.Call):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return self._code.name

    def trailing_metadata(self):
        return ()

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class _Stream:
    """Yields items, then fails with ``error`` (or ends when None)."""

    def __init__(self, items, error=None):
        self._items, self._error = items, error

    def __iter__(self):
        yield from self._items
        if self._error is not None:
            raise _StreamError(self._error)

    def cancel(self):
        return True


def _drain(pump: follow.Pump, count: int, timeout: float = 5.0) -> list[tuple[str, object]]:
    out = []
    end = time.monotonic() + timeout
    while len(out) < count:
        try:
            out.append(pump.items.get(timeout=max(end - time.monotonic(), 0.01)))
        except queue.Empty:
            break
    return out


def test_reopens_after_deadline_and_end_from_the_last_position():
    opened: list[str] = []
    position = {"token": ""}
    scripts = [
        _Stream(["a", "b"], grpc.StatusCode.DEADLINE_EXCEEDED),
        _Stream(["c"]),  # a clean end is reopened too
        _Stream(["d"], grpc.StatusCode.PERMISSION_DENIED),
    ]

    def open_stream(timeout: float) -> _Stream:
        assert 0 < timeout <= follow.STREAM_SLICE_S
        opened.append(position["token"])
        return scripts[len(opened) - 1]

    pump = follow.Pump(open_stream, time.monotonic() + 60, track=lambda item: position.update(token=item)).start()
    try:
        items = _drain(pump, 5)
    finally:
        pump.stop()
    assert items[:4] == [("item", "a"), ("item", "b"), ("item", "c"), ("item", "d")]
    assert items[4][0] == "error" and items[4][1].code() == grpc.StatusCode.PERMISSION_DENIED
    assert opened == ["", "b", "c"]


def test_unavailable_is_reported_once_then_given_up(monkeypatch):
    monkeypatch.setattr(follow, "RECONNECT_GIVE_UP_S", 0.0)
    pump = follow.Pump(lambda timeout: _Stream([], grpc.StatusCode.UNAVAILABLE), time.monotonic() + 60).start()
    try:
        items = _drain(pump, 2)
    finally:
        pump.stop()
    assert items[0] == ("reconnecting", None)
    assert items[1][0] == "error" and items[1][1].code() == grpc.StatusCode.UNAVAILABLE


def test_wait_runs_out():
    pump = follow.Pump(lambda timeout: _Stream(["x"]), time.monotonic() + 0.2).start()
    try:
        items = _drain(pump, 2, timeout=3.0)
    finally:
        pump.stop()
    assert items[-1] == ("timeout", None)
    assert all(kind in ("item", "timeout") for kind, _ in items)
