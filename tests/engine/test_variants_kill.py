"""A lead's variant survives SIGKILL and an in-doubt retry: one `drumbeat worker` process
on PostgreSQL, killed three times mid-send and restarted, sends an A/B WhatsApp step (two
templates) to the fake Cloud API server; every in-doubt lead is then retried. Whatever
each lead received, counted where the provider sees it, is the template of its own
variant (the pure SHA-256 function of lead and step), and every attempt records it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select, update

from drumbeat.domain import variants
from drumbeat.services import campaigns as svc
from drumbeat.services import leads as lead_service
from drumbeat.store.tables import attempts, leads
from tests.conftest import postgresql_only
from tests.engine.harness import Fleet, leads_by_state, quiescent, whatsapp_key
from tests.factory import add_leads, new_campaign, workspace

LEADS = 1_500
NAMES = ("promo_a", "promo_b")


@postgresql_only
def test_a_leads_variant_is_the_same_across_sigkill_and_in_doubt_retry(ctx, db_url, secret_key, tmp_path,
                                                                       whatsapp_server):
    p = workspace(ctx)
    whatsapp_key(ctx, p, whatsapp_server)
    whatsapp_server.latency = 0.1
    ab = [{"template": {"name": name, "language": "en", "body": name}, "weight": w}
          for name, w in zip(NAMES, (2, 1), strict=True)]
    cid = new_campaign(ctx, p, steps=[{"channel": "whatsapp", "template": ab[0]["template"], "variants": ab,
                                       "delay_seconds": 0}])
    add_leads(ctx, cid, LEADS)
    svc.start(ctx, p, cid)
    deadline = time.monotonic() + 240
    with Fleet(db_url, secret_key, tmp_path, 1, concurrency=16, tick_seconds="0.05", lease_seconds="3",
               sweep_seconds="600") as fleet:
        for _ in range(3):
            fleet.wait_started(deadline, 0)
            time.sleep(0.4)
            fleet.kill(0)
            fleet.restart(0)
        fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
        with ctx.db.connect() as conn:
            doubted = list(conn.execute(select(leads.c.id).where(leads.c.campaign_id == cid,
                                                                 leads.c.state == "in_doubt")).scalars())
        for lead_id in doubted:
            lead_service.resolve(ctx, p, cid, str(lead_id), "retry")
        with ctx.db.begin() as conn:  # due now: the wait for a late answer is not what this test is about
            conn.execute(update(leads).where(leads.c.id.in_(doubted)).values(next_action_at=datetime.now(UTC)))
        fleet.wait_while(lambda: not quiescent(ctx, cid), deadline)
    assert leads_by_state(ctx, cid) == {"completed": LEADS}
    with ctx.db.connect() as conn:
        phones = dict(conn.execute(select(leads.c.phone, leads.c.id).where(leads.c.campaign_id == cid)).all())
        rows = conn.execute(select(attempts.c.lead_id, attempts.c.variant).where(attempts.c.campaign_id == cid)).all()
    own = {lead_id: variants.pick(lead_id, 0, [2, 1]) for lead_id in phones.values()}
    assert [(lead_id, v) for lead_id, v in rows if v != own[lead_id]] == []
    received = [(phones["+" + call.to], call.body["template"]["name"]) for call in whatsapp_server.calls()]
    assert len({lead for lead, _ in received}) == LEADS
    assert [(lead, name) for lead, name in received if name != NAMES[own[lead]]] == []
    print(f"\n{len(doubted)} leads retried after in doubt; {len(rows)} attempts; "
          f"{sum(1 for v in own.values() if v == 0)} leads on variant A of {LEADS}")
    assert doubted or len(rows) > LEADS  # the kills cut some sends off (else this proved nothing)
