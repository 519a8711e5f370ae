"""docker-compose.yml cannot run here (no Docker engine), so it is checked by parsing it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from chassis.settings import ENV_VARS, Settings
from speako.cli.main import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DEFAULT_PORTS = {name: int(getattr(Settings(), f"{name}_addr").rsplit(":", 1)[1]) for name in SERVICES}


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_compose_runs_infrastructure_and_every_service():
    services = COMPOSE["services"]
    assert {"postgres", "rabbitmq", "jaeger", *SERVICES} <= set(services)
    assert "management" in services["rabbitmq"]["image"]
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_each_service_runs_its_own_command_from_the_one_dockerfile():
    for name in SERVICES:
        svc = COMPOSE["services"][name]
        assert svc["build"] == "."
        assert svc["command"] == ["serve", name]
        assert (ROOT / "Dockerfile").exists()
        assert svc["healthcheck"]["test"][:3] == ["CMD", "speako", "health"]
        for dep, cond in svc["depends_on"].items():
            assert dep in COMPOSE["services"], dep
            assert cond["condition"] in {"service_healthy", "service_started"}


def test_ports_and_addresses_agree_with_the_settings_defaults():
    for name in SERVICES:
        svc = COMPOSE["services"][name]
        env = _env(svc)
        port = DEFAULT_PORTS[name]
        assert f"{port}:{port}" in svc["ports"]
        assert env["SPEAKO_LISTEN_ADDR"] == f"0.0.0.0:{port}"
        assert env[f"SPEAKO_{name.upper()}_ADDR"] == f"{name}:{port}"
        assert svc["healthcheck"]["test"][3] == f"{name}:{port}"
        assert env["SPEAKO_RUNTIME_ADDR"] == env["SPEAKO_ACTIVATION_ADDR"]


def test_every_env_var_named_is_one_the_services_read():
    known_otel = re.compile(
        r"^OTEL_(TRACES_EXPORTER|EXPORTER_OTLP_\w+|TRACES_SAMPLER(_ARG)?|BSP_\w+|SERVICE_NAME|RESOURCE_ATTRIBUTES)$"
    )
    for name in SERVICES:
        for var in _env(COMPOSE["services"][name]):
            assert var in ENV_VARS or known_otel.match(var), f"{name}: unknown env var {var}"


def test_urls_point_at_the_compose_infrastructure():
    env = _env(COMPOSE["services"]["config"])
    assert "@postgres:5432/" in env["SPEAKO_DATABASE_URL"]
    assert "@rabbitmq:5672/" in env["SPEAKO_AMQP_URL"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://jaeger:4317")
