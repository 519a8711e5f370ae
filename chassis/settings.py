"""Typed settings read from the environment (defaults from DESIGN.md section 8)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

DEV_AUTH_SECRET = "speako-dev-secret-not-for-production"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (32 bytes).
MIN_AUTH_SECRET_BYTES = 32

# Every variable Settings.from_env reads (docker-compose.yml is checked against this list).
ENV_VARS = (
    "SPEAKO_ENV",
    "SPEAKO_DATABASE_URL",
    "SPEAKO_AMQP_URL",
    "SPEAKO_CONFIG_ADDR",
    "SPEAKO_PUBLISHER_ADDR",
    "SPEAKO_NOTIFIER_ADDR",
    "SPEAKO_ACTIVATION_ADDR",
    "SPEAKO_RUNTIME_ADDR",
    "SPEAKO_LISTEN_ADDR",
    "SPEAKO_AUTH_SECRET",
    "SPEAKO_PUBLISH_DEADLINE_S",
    "SPEAKO_MAX_MESSAGE_BYTES",
    "SPEAKO_SHUTDOWN_GRACE_S",
    "SPEAKO_RPC_TIMEOUT_S",
    "SPEAKO_METRICS_PORT_BASE",
    "SPEAKO_LOG_LEVEL",
    "SPEAKO_EVENT_LOOP",
)

# Event loops a service can run on (SPEAKO_EVENT_LOOP); the first is the default.
EVENT_LOOPS = ("uvloop", "asyncio")


class SettingsError(ValueError):
    """The environment does not describe a runnable service."""


def event_loop_from(env: Mapping[str, str]) -> str:
    """SPEAKO_EVENT_LOOP, checked: the event loop the services run on (chassis.server.run_event_loop)."""
    event_loop = env.get("SPEAKO_EVENT_LOOP") or EVENT_LOOPS[0]
    if event_loop not in EVENT_LOOPS:
        raise SettingsError(f"SPEAKO_EVENT_LOOP={event_loop!r}: expected one of {', '.join(EVENT_LOOPS)}")
    return event_loop


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r} is not a number") from exc
    if value <= 0:
        raise SettingsError(f"{key}={raw!r} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a service reads from its environment."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/speako"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    config_addr: str = "127.0.0.1:50051"
    publisher_addr: str = "127.0.0.1:50052"
    notifier_addr: str = "127.0.0.1:50053"
    activation_addr: str = "127.0.0.1:50054"
    runtime_addr: str = "127.0.0.1:50054"
    auth_secret: str = DEV_AUTH_SECRET
    dev_mode: bool = False
    publish_deadline_s: float = 300.0
    # Largest gRPC message accepted or sent.
    max_message_bytes: int = 16 * 1024 * 1024
    # Time in-flight RPCs and jobs get to finish after SIGTERM.
    shutdown_grace_s: float = 10.0
    # Default deadline of service-to-service RPCs.
    rpc_timeout_s: float = 10.0
    # Where `speako serve <one service>` listens when not on its own address (containers: 0.0.0.0:port).
    listen_addr: str = ""
    # uvloop (libuv) or the standard library's loop; see chassis.server.run_event_loop.
    event_loop: str = EVENT_LOOPS[0]
    # Prometheus port per service; 0 disables the metrics endpoint.
    metrics_ports: Mapping[str, int] = field(
        default_factory=lambda: {"config": 9461, "publisher": 9462, "notifier": 9463, "activation": 9464}
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from SPEAKO_* variables; fail with a clear message when unrunnable."""
        env = os.environ if env is None else env
        dev_mode = env.get("SPEAKO_ENV", "").lower() == "dev"
        secret = env.get("SPEAKO_AUTH_SECRET", "")
        if not secret:
            if not dev_mode:
                raise SettingsError(
                    "SPEAKO_AUTH_SECRET is not set. Set it to the shared HS256 secret, "
                    "or set SPEAKO_ENV=dev for local use with a built-in development secret."
                )
            secret = DEV_AUTH_SECRET
        elif not dev_mode and len(secret.encode()) < MIN_AUTH_SECRET_BYTES:
            raise SettingsError(
                f"SPEAKO_AUTH_SECRET is {len(secret.encode())} bytes; an HS256 secret needs at least "
                f"{MIN_AUTH_SECRET_BYTES} random bytes (e.g. `openssl rand -base64 48`)."
            )
        activation_addr = env.get("SPEAKO_ACTIVATION_ADDR") or cls.activation_addr
        base_port = int(env.get("SPEAKO_METRICS_PORT_BASE", "9460"))
        event_loop = event_loop_from(env)
        return cls(
            database_url=env.get("SPEAKO_DATABASE_URL") or cls.database_url,
            amqp_url=env.get("SPEAKO_AMQP_URL") or cls.amqp_url,
            config_addr=env.get("SPEAKO_CONFIG_ADDR") or cls.config_addr,
            publisher_addr=env.get("SPEAKO_PUBLISHER_ADDR") or cls.publisher_addr,
            notifier_addr=env.get("SPEAKO_NOTIFIER_ADDR") or cls.notifier_addr,
            activation_addr=activation_addr,
            runtime_addr=env.get("SPEAKO_RUNTIME_ADDR") or activation_addr,
            auth_secret=secret,
            dev_mode=dev_mode,
            publish_deadline_s=_float(env, "SPEAKO_PUBLISH_DEADLINE_S", cls.publish_deadline_s),
            max_message_bytes=int(_float(env, "SPEAKO_MAX_MESSAGE_BYTES", cls.max_message_bytes)),
            shutdown_grace_s=_float(env, "SPEAKO_SHUTDOWN_GRACE_S", cls.shutdown_grace_s),
            rpc_timeout_s=_float(env, "SPEAKO_RPC_TIMEOUT_S", cls.rpc_timeout_s),
            listen_addr=env.get("SPEAKO_LISTEN_ADDR", ""),
            event_loop=event_loop,
            metrics_ports={
                name: (0 if base_port == 0 else base_port + offset)
                for offset, name in enumerate(("config", "publisher", "notifier", "activation"), start=1)
            },
        )


T = TypeVar("T")


def tunables_from_env(cls: type[T], prefix: str, env: Mapping[str, str] | None = None) -> T:
    """Build a dataclass of positive numeric tunables, overriding defaults from ``<prefix><FIELD>``.

    e.g. ``tunables_from_env(NotifierOptions, "SPEAKO_NOTIFIER_")`` reads SPEAKO_NOTIFIER_HEARTBEAT_S.
    """
    env = os.environ if env is None else env
    values: dict[str, float | int] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key = prefix + f.name.upper()
        raw = env.get(key)
        if raw is None or raw == "":
            continue
        try:
            value: float | int = int(raw) if f.type in ("int", int) else float(raw)
        except ValueError:
            raise SettingsError(f"{key}={raw!r} is not a number") from None
        if value <= 0:
            raise SettingsError(f"{key}={raw!r} must be positive")
        values[f.name] = value
    return cls(**values)
