"""Scale-out (issue 7): two and four `drumbeat worker` processes (and two of two lanes each)
share one PostgreSQL with no other coordination. Over 50,000 leads every lead is contacted exactly once per step,
and a daily cap racing all of them holds exactly."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts, leads
from tests.conftest import postgresql_only
from tests.engine.test_concurrency import _spawn_worker, _wait_started, double_contacts, wait_while
from tests.engine.test_windows_caps import _zone_near_local_noon, schedule
from tests.engine.test_worker import TWO_STEPS
from tests.factory import add_leads, new_campaign, sandbox_key, workspace

CAPPED_LEADS, CAP = 30_000, 20_000
TWO_STEP_LEADS = 20_000


def accepted(ctx, campaign_id: str) -> int:
    with ctx.db.connect() as conn:
        return conn.execute(select(func.count()).select_from(attempts).where(
            attempts.c.campaign_id == campaign_id, attempts.c.status.in_(("sent", "delivered", "read")))).scalar_one()


def in_flight(ctx) -> int:
    with ctx.db.connect() as conn:
        query = select(func.count()).select_from(attempts).where(attempts.c.status == "sending")
        return conn.execute(query).scalar_one()


@pytest.mark.slow
@postgresql_only  # worker processes on many machines share one PostgreSQL
@pytest.mark.parametrize(("workers", "lanes"), [(2, 1), (4, 1), (2, 2)])
def test_worker_processes_share_one_database_contact_everyone_once_and_hold_the_cap(ctx, db_url, secret_key,
                                                                                    tmp_path, workers, lanes):
    p = workspace(ctx)
    sandbox_key(ctx, p, "whatsapp", label="wa")
    sandbox_key(ctx, p, "email", label="mail")
    capped = new_campaign(ctx, p, name="capped", schedule=schedule("00:00", "24:00", tz=_zone_near_local_noon()),
                          limits={"daily_cap": CAP, "weekly_cap": None, "rate_per_second": None, "ramp": None})
    two_steps = new_campaign(ctx, p, name="two steps", steps=TWO_STEPS)
    add_leads(ctx, capped, CAPPED_LEADS)
    add_leads(ctx, two_steps, TWO_STEP_LEADS, start=CAPPED_LEADS)
    svc.start(ctx, p, capped)
    svc.start(ctx, p, two_steps)
    logs = [tmp_path / f"worker{i}.log" for i in range(workers)]
    procs = [_spawn_worker(db_url, secret_key, log, lanes=lanes) for log in logs]
    try:
        deadline = time.monotonic() + 400
        for log in logs:
            _wait_started(log, deadline)
        wait_while(lambda: (svc.get_campaign(ctx, p, two_steps)["status"] == "sending"
                            or accepted(ctx, capped) < CAP or in_flight(ctx)), procs, logs, deadline)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)
    # The workers are gone: these are final figures, not a snapshot.
    done = svc.get_campaign(ctx, p, two_steps)
    assert done["status"] == "completed" and done["progress"]["completed"] == TWO_STEP_LEADS
    assert accepted(ctx, two_steps) == 2 * TWO_STEP_LEADS
    assert accepted(ctx, capped) == CAP
    with ctx.db.connect() as conn:
        assert conn.execute(select(func.count()).select_from(attempts)
                            .where(attempts.c.campaign_id == capped)).scalar_one() == CAP  # not one over
        assert conn.execute(select(func.count()).select_from(leads).where(
            leads.c.campaign_id == capped, leads.c.state == "not_contacted")).scalar_one() == CAPPED_LEADS - CAP
    assert svc.get_campaign(ctx, p, capped)["caps"]["today"] == CAP
    assert double_contacts(ctx) == 0
