"""A worker killed at any instant (SIGKILL) loses nothing (DESIGN.md §3, crash): three
worker processes on PostgreSQL over 8,000 leads, one of them killed at random moments ten
times and restarted, all sending to the fake WhatsApp Cloud API server of the test process.

What the provider received is counted per recipient, outside the killed processes: our own
attempt rows cannot show a lead re-sent after its first send went in doubt. Afterwards every
lead reached the provider at most once; every lead it never received is in doubt (never
marked sent); every completed lead's attempt holds the message id the provider answered; and
no more leads are in doubt than the killed workers had sends in flight."""

from __future__ import annotations

import os
import random
import time

from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.store.tables import attempts
from tests.conftest import postgresql_only
from tests.engine.harness import Fleet, accepted_message_ids, leads_by_state, quiescent, receipts, whatsapp_key
from tests.factory import add_leads, new_campaign, workspace

LEADS = 8_000
KILLS = 10
CONCURRENCY = 16


@postgresql_only  # worker processes racing over one database: the PostgreSQL deployment
def test_a_worker_killed_ten_times_loses_no_lead_and_contacts_nobody_twice(
        ctx, db_url, secret_key, tmp_path, whatsapp_server):
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server)
    # Each send is in flight a while, so a kill cuts some off mid-call; and 3 x 16 calls at
    # once bound the pace (at most 320 a second), so work is left after the last kill.
    whatsapp_server.latency = 0.15
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    rng = random.Random(os.environ.get("KILL_SEED"))
    started = time.monotonic()
    deadline = started + 240
    # A short lease so the dead worker's leads come back quickly, but not so short that a
    # live worker stalled by a loaded machine loses its own (which would be safe, in doubt,
    # but would blur the bound below).
    with Fleet(db_url, secret_key, tmp_path, 3, concurrency=CONCURRENCY, tick_seconds="0.05", lease_seconds="4",
               sweep_seconds="600") as fleet:
        for _ in range(KILLS):
            fleet.wait_started(deadline, 0)
            time.sleep(rng.uniform(0.2, 1.0))  # a random moment of its work
            fleet.kill(0)
            fleet.restart(0)
        work_left_at_last_kill = leads_by_state(ctx, cid).get("not_contacted", 0)
        # let the survivors (and the restarted worker) finish, leases expire and be recovered
        fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
    elapsed = time.monotonic() - started
    states = leads_by_state(ctx, cid)
    seen = receipts(ctx, cid, whatsapp_server)
    ids = accepted_message_ids(ctx, cid)
    with ctx.db.connect() as conn:
        total_attempts = conn.execute(select(func.count()).select_from(attempts)).scalar()
    in_doubt = states.get("in_doubt", 0)
    print(f"\nkill test: {LEADS} leads, 3 workers x concurrency {CONCURRENCY}, {fleet.kills} SIGKILLs, "
          f"{elapsed:.1f}s; leads by state {states}; attempts {total_attempts}; in doubt {in_doubt} "
          f"(bound {CONCURRENCY * KILLS}); not contacted at the last kill {work_left_at_last_kill}; "
          f"at the provider (state x sends received: leads) {seen.summary()}")
    assert fleet.kills == KILLS
    assert work_left_at_last_kill > 0, "the campaign finished before the last kill: make the run longer"
    assert sum(states.values()) == LEADS
    assert set(states) <= {"completed", "in_doubt"}
    assert seen.more_than(1) == []  # nobody contacted twice, counted where the provider sees it
    assert [r for r in seen.received(0) if r.state != "in_doubt"] == []  # never received: never marked sent
    # A completed lead's attempt holds the id of the one message the provider accepted for it.
    assert [r for r in seen.in_state("completed") if ids.get(r.lead_id) not in r.message_ids] == []
    assert in_doubt <= CONCURRENCY * KILLS
    assert len(seen.in_state("completed")) + in_doubt == LEADS  # every lead was sent once or waits for a person
    view = svc.get_campaign(ctx, p, cid)
    assert view["progress"]["in_doubt"] == in_doubt
    assert view["status"] == ("sending" if in_doubt else "completed")  # never completes while in doubt
