"""Following publish jobs live over the notifier's server streams."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import click
import grpc

from speako.cli.client import Client
from speako.cli.errors import EXIT_INTERRUPTED
from speako.cli.render import (
    TERMINAL_STATES,
    job_elapsed,
    outcome_line,
    progress_event,
    progress_status,
    ts_datetime,
)
from speako.config.v1 import resources_pb2 as res
from speako.notifier.v1 import notifier_service_pb2 as ntf

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# A stream that ends, hits its deadline or loses the notifier is reopened (the single-job stream
# restarts with the current state; the tenant stream resumes after the last token): nothing is lost.
STREAM_SLICE_S = 300.0
# A notifier unreachable for this long is reported as an error instead of waited for.
RECONNECT_GIVE_UP_S = 30.0


class Interrupted(Exception):
    """Ctrl-C while following: the job goes on, only the watching stops."""


def event_elapsed(job: res.PublishJob) -> float:
    """Seconds from the job's creation to this update, by the server's clock."""
    start, at = ts_datetime(job.create_time), ts_datetime(job.update_time)
    return (at - start).total_seconds() if start and at else 0.0


class Pump:
    """Reads a server stream on a thread into a queue, reopening it on transient failures.

    The main thread stays free to redraw the elapsed-time line and to receive Ctrl-C.
    """

    def __init__(
        self, open_stream: Callable[[float], Any], until: float, track: Callable[[Any], None] | None = None
    ) -> None:
        self._open = open_stream
        self._track = track
        self._until = until
        self._call: Any = None
        self._stopped = threading.Event()
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="speako-follow", daemon=True)

    def start(self) -> Pump:
        self._thread.start()
        return self

    def _run(self) -> None:
        down_since: float | None = None
        while not self._stopped.is_set():
            remaining = self._until - time.monotonic()
            if remaining <= 0:
                self.items.put(("timeout", None))
                return
            try:
                self._call = self._open(min(remaining, STREAM_SLICE_S))
                for item in self._call:
                    down_since = None
                    if self._track is not None:
                        # Runs before queueing, so a reopened stream resumes after everything queued.
                        self._track(item)
                    self.items.put(("item", item))
                # The server closed the stream (a watcher stops reading at a terminal state before
                # this): reopen it, since the single-job stream restarts with the current state
                # and the tenant stream resumes after its last token.
                self._stopped.wait(0.5)
            except grpc.RpcError as err:
                if self._stopped.is_set():
                    return
                code = err.code() if isinstance(err, grpc.Call) else None
                if code == grpc.StatusCode.UNAVAILABLE:
                    now = time.monotonic()
                    if down_since is None:
                        down_since = now
                        self.items.put(("reconnecting", None))
                    if now - down_since < RECONNECT_GIVE_UP_S:
                        self._stopped.wait(1.0)
                        continue
                elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue
                self.items.put(("error", err))
                return

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=2.0)


@dataclass
class Display:
    """Progress output: event lines always, plus a live line rewritten in place on a terminal."""

    err: bool

    def __post_init__(self) -> None:
        stream: TextIO = sys.stderr if self.err else sys.stdout
        self.live = stream.isatty()
        self._drawn = False
        self._tick = 0

    def line(self, text: str) -> None:
        self.clear()
        click.echo(text, err=self.err)

    def status(self, text: str) -> None:
        if not self.live:
            return
        self._tick += 1
        click.echo(f"\r\x1b[K{text}", nl=False, err=self.err)
        self._drawn = True

    def spinner(self) -> str:
        return SPINNER[self._tick % len(SPINNER)]

    def clear(self) -> None:
        if self._drawn:
            click.echo("\r\x1b[K", nl=False, err=self.err)
            self._drawn = False


def follow_job(
    client: Client, job_name: str, *, display: Display, max_wait: float, known: res.PublishJob | None = None
) -> res.PublishJob | None:
    """Follow one job to a terminal state; returns it (None if the wait ran out).

    ``known`` is a state of the job the caller already has (PublishDraft's SUBMITTED answer): it is
    shown first, since the stream starts at the current state, which may already be a later one.
    Raises Interrupted on Ctrl-C (after cancelling only the stream) and ServerError on a failed stream.
    """

    def open_stream(timeout: float) -> Any:
        return client.stream("notifier", "WatchPublishJob", ntf.WatchPublishJobRequest(name=job_name), timeout)

    pump = Pump(open_stream, time.monotonic() + max_wait).start()
    job: res.PublishJob | None = None
    shown: tuple[int, int, str] | None = None
    if known is not None and known.state != res.PublishJob.STATE_UNSPECIFIED:
        shown = (known.state, known.attempts, known.error.message)
        display.line(progress_event(known, event_elapsed(known)))
    try:
        while True:
            try:
                kind, payload = pump.items.get(timeout=0.1 if display.live else 1.0)
            except queue.Empty:
                if job is not None:
                    display.status(progress_status(job, job_elapsed(job, datetime.now(UTC)), display.spinner()))
                continue
            if kind == "item":
                job = payload.job
                key = (job.state, job.attempts, job.error.message)
                if key != shown:
                    shown = key
                    display.line(progress_event(job, event_elapsed(job)))
                if job.state in TERMINAL_STATES:
                    display.line(outcome_line(job, job_elapsed(job, datetime.now(UTC))))
                    return job
            elif kind == "reconnecting":
                display.line("        (notifier unavailable; reconnecting…)")
            elif kind == "error":
                raise client.error("notifier", payload)
            elif kind == "timeout":
                display.clear()
                return job if job is not None and job.state in TERMINAL_STATES else None
    except KeyboardInterrupt:
        display.clear()
        raise Interrupted() from None
    finally:
        pump.stop()


def keep_watching_hint(job_name: str) -> str:
    """What to type to pick the job up again."""
    return f"Stopped following; the publish job goes on. Keep watching with:\n  speako jobs watch {job_name}"


def exit_interrupted(ctx: click.Context, job_name: str) -> None:
    """Print the resume hint and exit 130 (the shell's code for Ctrl-C)."""
    click.echo(keep_watching_hint(job_name), err=True)
    ctx.exit(EXIT_INTERRUPTED)
