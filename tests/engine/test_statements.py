"""The claim path issues a fixed number of statements per batch, whatever its size: no
statement per lead (N+1) when claiming, starting attempts or recording outcomes."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event

from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


class StatementLog:
    def __init__(self, engine) -> None:
        self.statements: list[str] = []
        self.engine = engine

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement)


def statements_per_round(ctx, batch: int, **limits) -> tuple[list[int], int]:
    """Run a campaign of 3 batches of `batch` leads through one worker (concurrency =
    batch) and count the statements of each busy round."""
    p = workspace(ctx, name=f"W{batch}{len(limits)}")
    sandbox_key(ctx, p, label=f"k{batch}")
    cid = new_campaign(ctx, p, limits={"daily_cap": None, "weekly_cap": None, "rate_per_second": None,
                                       "ramp": None, **limits})
    add_leads(ctx, cid, 3 * batch, start=batch * 1000)
    svc.start(ctx, p, cid)
    # A tick of an hour: the once-per-tick housekeeping (campaign list, lease scan,
    # scheduled starts) stays out of the measured rounds, which are then deterministic.
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=batch, tick_seconds=3600)
    asyncio.run(worker.step())  # warm caches (steps, credentials, lease scan)
    counts, sent = [], 0
    for _ in range(3):
        with StatementLog(ctx.db) as log:
            assert asyncio.run(worker.step())
        counts.append(len(log.statements))
    asyncio.run(worker.drain())
    sent = svc.get_campaign(ctx, p, cid)["breakdown"]["sent"]
    return counts, sent


@pytest.mark.parametrize("limits", [{}, {"daily_cap": 100_000, "rate_per_second": 100_000}],
                         ids=["uncapped", "capped"])
def test_a_round_costs_the_same_statements_for_8_leads_as_for_128(ctx, limits):
    small, sent_small = statements_per_round(ctx, 8, **limits)
    large, sent_large = statements_per_round(ctx, 128, **limits)
    assert sent_small == 24 and sent_large == 384  # the rounds did real work
    assert small == large
    assert max(large) <= 20  # one claim transaction and its reads, not one statement per lead


def test_sending_campaigns_with_nothing_due_add_no_statement_to_a_round(ctx):
    """A worker claims only the campaigns with a lead to take now (one query for all of
    them): campaigns waiting for tomorrow cost its rounds nothing, however many."""
    p = workspace(ctx, name="Idle")
    sandbox_key(ctx, p, label="k")
    tomorrow = ctx.clock() + timedelta(days=1)

    def idle(n: int, at: int) -> None:
        for i in range(n):
            cid = new_campaign(ctx, p, name=f"idle {at + i}")
            add_leads(ctx, cid, 2, start=100_000 + 10 * (at + i), now=tomorrow)
            svc.start(ctx, p, cid)

    def busy_rounds(at: int) -> tuple[list[int], int]:
        cid = new_campaign(ctx, p, name=f"busy {at}")
        add_leads(ctx, cid, 3 * 16, start=500_000 + 1000 * at)
        svc.start(ctx, p, cid)
        worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=16, tick_seconds=3600)
        asyncio.run(worker.step())  # warm caches (steps, credentials, lease scan)
        counts = []
        for _ in range(2):
            with StatementLog(ctx.db) as log:
                assert asyncio.run(worker.step())
            counts.append(len(log.statements))
        asyncio.run(worker.drain())
        return counts, svc.get_campaign(ctx, p, cid)["breakdown"]["sent"]

    idle(1, 0)
    few, sent_few = busy_rounds(1)
    idle(30, 1)
    many, sent_many = busy_rounds(2)
    assert sent_few == sent_many == 48  # the rounds did real work
    assert few == many


def test_an_idle_round_costs_the_same_statements_beside_2_waiting_campaigns_as_beside_30(ctx):
    """When idle a worker settles the sending campaigns (finish, hold an empty pool, pause
    what nothing can move) from reads of all of them at once; a campaign that needs none
    of these costs nothing more."""
    p = workspace(ctx, name="Waiting")
    sandbox_key(ctx, p, label="k")
    tomorrow = ctx.clock() + timedelta(days=1)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, concurrency=16, tick_seconds=3600)

    def idle_round(waiting: int, at: int) -> int:
        for i in range(waiting):
            cid = new_campaign(ctx, p, name=f"waiting {at + i}")
            add_leads(ctx, cid, 2, start=100_000 + 10 * (at + i), now=tomorrow)
            svc.start(ctx, p, cid)
        worker._campaigns_read_at = None  # the new campaigns are seen at once
        asyncio.run(worker.step())  # warm the steps cache
        with StatementLog(ctx.db) as log:
            assert not asyncio.run(worker.step())  # nothing to claim: an idle round
        return len(log.statements)

    two = idle_round(2, 0)
    thirty = idle_round(28, 2)
    assert two == thirty
    view = svc.list_campaigns(ctx, p, limit=50)["items"]
    assert len(view) == 30 and {c["status"] for c in view} == {"sending"}  # nothing settled them wrongly
