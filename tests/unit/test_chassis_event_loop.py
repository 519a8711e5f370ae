import asyncio

import pytest
import uvloop

from chassis.server import run_event_loop
from chassis.settings import Settings, SettingsError

DEV = {"SPEAKO_ENV": "dev"}


def test_services_run_on_uvloop_unless_told_otherwise():
    assert Settings.from_env(DEV).event_loop == "uvloop"
    assert Settings.from_env({**DEV, "SPEAKO_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"


def test_an_unknown_event_loop_stops_the_service_at_start():
    with pytest.raises(SettingsError, match="SPEAKO_EVENT_LOOP='trio'"):
        Settings.from_env({**DEV, "SPEAKO_EVENT_LOOP": "trio"})


@pytest.mark.parametrize(("kind", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_run_event_loop_runs_the_service_on_the_chosen_loop(kind: str, loop_type: type):
    seen: list[asyncio.AbstractEventLoop] = []

    async def service() -> None:
        seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)

    run_event_loop(service(), kind)
    assert len(seen) == 1
    assert isinstance(seen[0], loop_type)
    if kind == "asyncio":
        assert not isinstance(seen[0], uvloop.Loop)
