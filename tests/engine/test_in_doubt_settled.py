"""Crashes settled by the provider's own records (issue 21; DESIGN.md §3, §9): worker
processes on PostgreSQL are SIGKILLed at least ten times during a 3,000-lead campaign,
and what the provider received is counted per recipient outside them.

- WhatsApp: the fake sends a `sent` status after each message it accepted (like Meta,
  echoing `biz_opaque_callback_data`, signed, some only after the killed worker's lease
  has expired) to our webhook served by the real app. At the end no lead the provider
  received is left in doubt, nobody was contacted twice, no lead is lost; with
  `retry_after_silence`, the leads the provider never received are sent exactly once.
- Twilio: no status callback; the sweeper's look-up of `Messages.json` settles them.

To be sure some in-flight sends never reach the provider, each kill happens while the fake
drops sends (answers 503 without receiving them, after its latency): the killed worker's
calls then in flight are lost for good, the survivors retry theirs as transient errors.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from drumbeat.services import campaigns as svc
from drumbeat.services import in_doubt
from drumbeat.store.tables import attempts
from tests.conftest import postgresql_only
from tests.engine.harness import Fleet, leads_by_state, quiescent, receipts, twilio_key, whatsapp_key
from tests.factory import add_leads, new_campaign, workspace
from tests.fakes.providers import free_port

LEADS = 3_000
KILLS = 10
CONCURRENCY = 8
APP_SECRET = "meta-app-secret"
SMS_STEP = [{"channel": "sms", "template": {"body": "Hi {{first_name}}, spring is here"}, "delay_seconds": 0}]


def resolutions(ctx, campaign_id: str) -> Counter:
    with ctx.db.connect() as conn:
        return Counter(dict(conn.execute(select(attempts.c.doubt_resolution, func.count()).where(
            attempts.c.campaign_id == campaign_id, attempts.c.doubt_resolution.is_not(None))
            .group_by(attempts.c.doubt_resolution)).all()))


def kill_during_campaign(ctx, fleet: Fleet, fake, campaign_id: str, deadline: float) -> int:
    """KILLS SIGKILLs, each of the next worker in turn; every other one while the fake drops
    sends (the calls then in flight never reach the provider), the others at a random
    moment (the calls in flight reached it). Returns how many leads were still not
    contacted at the last kill."""
    rng = random.Random(os.environ.get("KILL_SEED"))
    for k in range(KILLS):
        victim = k % fleet.n
        fleet.wait_started(deadline, victim)
        time.sleep(rng.uniform(0.3, 1.0))
        if k % 2 == 0:
            fake.dropping = True
            time.sleep(fake.latency + 0.1)  # every call it has in flight now is one the provider never gets
        fleet.kill(victim)
        fake.dropping = False
        fleet.restart(victim)
    return leads_by_state(ctx, campaign_id).get("not_contacted", 0)


@contextmanager
def api_server(db_url: str, secret_key: str, log: Path) -> Iterator[str]:
    """`drumbeat serve --no-worker` in a process of its own (the webhooks' receiver, as
    deployed; in the test process it would share one interpreter with the fakes)."""
    port = free_port()
    env = {**os.environ, "DRUMBEAT_DATABASE_URL": db_url, "DRUMBEAT_SECRET_KEY": secret_key}
    proc = subprocess.Popen([sys.executable, "-m", "drumbeat.cli", "serve", "--no-worker", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_whatsapp(ctx, db_url, secret_key, tmp_path, fake, **policy) -> tuple[dict, object, Counter, int, Fleet]:
    with api_server(db_url, secret_key, tmp_path / "api.log") as app_url:
        p = workspace(ctx)
        key = whatsapp_key(ctx, p, fake, app_secret=APP_SECRET)
        # Meta's `sent` comes shortly after acceptance, here sometimes only after a killed
        # worker's lease (4 s) ran out: both the `sending` and the `in_doubt` paths settle.
        delays = (0.05, 0.5) if policy else (0.05, 7.0)
        fake.send_statuses(f"{app_url}/webhooks/whatsapp/{key}", APP_SECRET, delay=delays)
        fake.latency = 0.3
        cid = new_campaign(ctx, p, **policy)
        add_leads(ctx, cid, LEADS)
        svc.start(ctx, p, cid)
        deadline = time.monotonic() + 240
        with Fleet(db_url, secret_key, tmp_path, 3, concurrency=CONCURRENCY, tick_seconds="0.05",
                   lease_seconds="4", sweep_seconds="1") as fleet:
            left = kill_during_campaign(ctx, fleet, fake, cid, deadline)
            # every send answered and recorded, every status the provider owes delivered
            try:
                fleet.wait_while(lambda: not (quiescent(ctx, cid) and fake.statuses_pending() == 0), deadline)
                fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: states {leads_by_state(ctx, cid)}, statuses pending "
                                     f"{fake.statuses_pending()}, delivered {fake.statuses_delivered}, "
                                     f"settled {resolutions(ctx, cid)}, logs in {tmp_path}") from None
        return leads_by_state(ctx, cid), receipts(ctx, cid, fake), resolutions(ctx, cid), left, fleet


@postgresql_only  # worker processes racing over one database: the PostgreSQL deployment
def test_whatsapp_statuses_settle_every_crashed_send_the_provider_received(
        ctx, db_url, secret_key, tmp_path, whatsapp_server):
    started = time.monotonic()
    states, seen, settled, left, fleet = run_whatsapp(ctx, db_url, secret_key, tmp_path, whatsapp_server)
    in_doubt_leads = seen.in_state("in_doubt")
    print(f"\nwhatsapp statuses: {LEADS} leads, {fleet.kills} SIGKILLs, {time.monotonic() - started:.1f}s; "
          f"states {states}; in-doubt attempts settled {dict(settled)}; statuses delivered "
          f"{whatsapp_server.statuses_delivered}; at the provider {seen.summary()}")
    assert fleet.kills >= KILLS and left > 0, "the campaign finished before the last kill"
    assert sum(states.values()) == LEADS and set(states) <= {"completed", "in_doubt"}  # none lost
    assert seen.more_than(1) == []  # nobody contacted twice, counted where the provider sees it
    assert [r for r in in_doubt_leads if r.received] == []  # what the provider received is settled
    assert [r for r in seen.received(0) if r.state != "in_doubt"] == []  # never received: never marked sent
    assert in_doubt_leads, "no kill cut a send off before the provider: the claim was not exercised"
    assert settled["provider_status"] > 0, "no status came after a lease expired: the in-doubt path not exercised"
    assert whatsapp_server.statuses_delivered == len(seen.received(1))


@postgresql_only
def test_with_retry_after_silence_the_sends_the_provider_never_received_go_out_exactly_once(
        ctx, db_url, secret_key, tmp_path, whatsapp_server):
    started = time.monotonic()
    states, seen, settled, left, fleet = run_whatsapp(
        ctx, db_url, secret_key, tmp_path, whatsapp_server, in_doubt_policy="retry_after_silence",
        in_doubt_silence_seconds=2)
    print(f"\nretry after silence: {LEADS} leads, {fleet.kills} SIGKILLs, {time.monotonic() - started:.1f}s; "
          f"states {states}; in-doubt attempts {dict(settled)}; at the provider {seen.summary()}")
    assert fleet.kills >= KILLS and left > 0
    assert states == {"completed": LEADS}
    assert len(seen.received(1)) == LEADS  # everybody exactly once
    assert settled["retried"] > 0, "no send was lost before the provider: the retry was not exercised"


@postgresql_only
def test_twilio_look_ups_settle_every_crashed_send_the_provider_received(
        ctx, db_url, secret_key, tmp_path, twilio_server):
    started = time.monotonic()
    p = workspace(ctx)
    twilio_key(ctx, p, twilio_server)
    twilio_server.latency = 0.3
    cid = new_campaign(ctx, p, steps=SMS_STEP)
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    deadline = time.monotonic() + 240
    with Fleet(db_url, secret_key, tmp_path, 3, concurrency=CONCURRENCY, tick_seconds="0.05",
               lease_seconds="4", sweep_seconds="1") as fleet:
        left = kill_during_campaign(ctx, fleet, twilio_server, cid, deadline)
        fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
    # One more look-up after the last lease was recovered (the workers' sweeper may not
    # have come round to the last ones).
    in_doubt.sweep(ctx)
    states, seen, settled = leads_by_state(ctx, cid), receipts(ctx, cid, twilio_server), resolutions(ctx, cid)
    print(f"\ntwilio look-ups: {LEADS} leads, {fleet.kills} SIGKILLs, {time.monotonic() - started:.1f}s; "
          f"states {states}; in-doubt attempts {dict(settled)}; at the provider {seen.summary()}")
    assert fleet.kills >= KILLS and left > 0
    assert sum(states.values()) == LEADS and set(states) <= {"completed", "in_doubt"}
    assert seen.more_than(1) == []
    assert [r for r in seen.in_state("in_doubt") if r.received] == []
    assert [r for r in seen.received(0) if r.state != "in_doubt"] == []
    assert seen.in_state("in_doubt"), "no kill cut a send off before the provider"
    assert settled["lookup"] > 0, "no crashed send reached the provider: the look-up was not exercised"
