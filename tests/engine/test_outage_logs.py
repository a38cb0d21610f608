"""Background loops log an outage once, not once per tick (issue 21, quick recovery): the
notifier and the sweeper, whose database fails several rounds in a row, twice, say once
that it went away and once that it came back, per outage, while probing it every round.
(The real thing, a crashed PostgreSQL: tests/engine/test_db_recovery.py.)"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from drumbeat.engine.notifier import Notifier
from drumbeat.engine.sweeper import Sweeper

# Two outages: five failed rounds, two good ones, three failed, then good ones.
SCRIPT = ["down"] * 5 + ["up"] * 2 + ["down"] * 3 + ["up"] * 2


def _scripted(stop: asyncio.Event, calls: list[str], answer):
    def one_round():
        calls.append(SCRIPT[len(calls)])
        if len(calls) == len(SCRIPT):
            stop.set()
        if calls[-1] == "down":
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return answer
    return one_round


@pytest.mark.parametrize("loop", ["notifier", "sweeper"])
def test_a_background_loop_logs_each_outage_once_however_many_rounds_it_lasts(ctx, loop):
    calls: list[str] = []

    async def main():
        stop = asyncio.Event()
        if loop == "notifier":
            runner = Notifier(ctx, tick_seconds=0.001)
            runner.probe_first = runner.probe_at_most = 0.001
            one_round = _scripted(stop, calls, 1)  # "busy": no wait between good rounds

            async def deliver_due():
                return one_round()

            runner.deliver_due = deliver_due
        else:
            runner = Sweeper(ctx, period_seconds=0.001)  # a probe is never longer than the period
            runner.sweep_once = _scripted(stop, calls, None)
        await asyncio.wait_for(runner.run(stop), timeout=30)

    with capture_logs() as logged:
        asyncio.run(main())
    assert calls == SCRIPT  # every round ran: the outage was probed round after round
    said = [e for e in logged if e["event"].startswith(loop)]
    assert [e["event"] for e in said] == [f"{loop}: database unreachable, probing", f"{loop}: database reachable again",
                                         f"{loop}: database unreachable, probing", f"{loop}: database reachable again"]
    assert said[0]["error"] == "Exception"
    assert [e for e in logged if e["log_level"] in ("warning", "error")] == [said[0], said[2]]
