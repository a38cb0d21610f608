"""A/B variants and campaign statistics through the real worker, on SQLite and PostgreSQL:
a lead's variant is a pure function of its id and the step (the split over weights holds,
is the same on re-run, and survives an in-doubt retry), and GET .../stats equals what the
attempts and leads tables say."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from drumbeat.channels.inbound import ReplyEvent, StatusEvent
from drumbeat.channels.sandbox import SandboxAdapter
from drumbeat.domain import stats as rules
from drumbeat.domain import variants
from drumbeat.engine.worker import Worker
from drumbeat.services import campaigns as svc
from drumbeat.services import leads as lead_service
from drumbeat.services import receipts
from drumbeat.services.stats import campaign_stats
from drumbeat.store import stats as stats_store
from drumbeat.store.tables import attempts, leads
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def sms_variants(*weights: int, label: str = "v") -> dict:
    parts = [{"template": {"body": f"Hi {{{{first_name}}}}, offer {label}{i}"}, "weight": w}
             for i, w in enumerate(weights)]
    return {"channel": "sms", "template": parts[0]["template"], "variants": parts, "delay_seconds": 0}


def drain(ctx, adapter=None) -> SandboxAdapter:
    adapter = adapter or SandboxAdapter()
    asyncio.run(Worker(ctx, {"sandbox": adapter}, concurrency=32).drain())
    return adapter


def attempt_rows(ctx, campaign_id):
    with ctx.db.connect() as conn:
        return [dict(r) for r in conn.execute(select(attempts).where(attempts.c.campaign_id == campaign_id)
                                              .order_by(attempts.c.id)).mappings()]


def test_ten_thousand_leads_split_by_weight_reproducibly_and_attempts_record_the_variant(clocked_ctx):
    ctx = clocked_ctx
    p = workspace(ctx)
    sandbox_key(ctx, p, channel="sms")
    cid = new_campaign(ctx, p, steps=[sms_variants(1, 1, label="a"), sms_variants(3, 1, label="b")])
    add_leads(ctx, cid, 10_000)
    svc.start(ctx, p, cid)
    drain(ctx)
    rows = attempt_rows(ctx, cid)
    assert len(rows) == 20_000 and all(r["status"] == "sent" for r in rows)
    # The variant recorded is the pure function of lead and step: a re-run (another worker,
    # a retry, a restart) computes the very same split.
    assert all(r["variant"] == variants.pick(r["lead_id"], r["step"], [1, 1] if r["step"] == 0 else [3, 1])
               for r in rows)
    split = {step: Counter(r["variant"] for r in rows if r["step"] == step) for step in (0, 1)}
    assert split == {step: Counter(variants.pick(r["lead_id"], step, [1, 1] if step == 0 else [3, 1])
                                   for r in rows if r["step"] == step) for step in (0, 1)}
    # Binomial bounds at 4.5 standard deviations: 1:1 -> 5000 +- 225; 3:1 -> 7500 +- 195.
    assert abs(split[0][0] - 5000) < 225 and split[0][0] + split[0][1] == 10_000
    assert abs(split[1][0] - 7500) < 195 and split[1][0] + split[1][1] == 10_000
    stats = campaign_stats(ctx, p, cid)
    assert [[v["sent"] for v in s["variants"]] for s in stats["steps"]] == [
        [split[0][0], split[0][1]], [split[1][0], split[1][1]]]
    # Each lead got its variant's text.
    with ctx.db.connect() as conn:
        one = conn.execute(select(leads.c.id).where(leads.c.campaign_id == cid).limit(1)).scalar_one()
    preview = lead_service_preview(ctx, p, cid, one)
    assert preview["steps"][0]["rendered"]["text"].endswith(f"offer a{variants.pick(one, 0, [1, 1])}")
    assert preview["steps"][1]["rendered"]["text"].endswith(f"offer b{variants.pick(one, 1, [3, 1])}")


def lead_service_preview(ctx, p, cid, lead_id, variant=None):
    from drumbeat.services import content
    return content.preview(ctx, p, cid, str(lead_id), variant)


def expected_from_tables(ctx, campaign_id, steps_variants, starts, end):
    """Stats recounted from the attempts and leads tables, as the API defines them."""
    with ctx.db.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(attempts).where(attempts.c.campaign_id == campaign_id))
                .mappings()]
        lead_rows = [dict(r) for r in conn.execute(select(leads).where(leads.c.campaign_id == campaign_id))
                     .mappings()]
    per: dict = {}
    points = [{"at": at, "sent": 0, "delivered": 0, "read": 0, "replied": 0, "failed": 0} for at in starts]

    def point(at):
        i = max(i for i, s in enumerate(starts) if s <= at) if starts[0] <= at < end else None
        return points[i] if i is not None else {}

    def add(step, variant, metric, at):
        key = (step, variant)
        per.setdefault(key, Counter())[metric] += 1
        if metric in ("sent", "delivered", "read", "replied", "failed"):
            p_ = point(at)
            if p_:
                p_[metric] += 1

    for r in rows:
        accepted = r["status"] in ("sent", "delivered", "read")
        for metric, hit in (("sent", accepted), ("delivered", r["status"] in ("delivered", "read")),
                            ("read", r["status"] == "read"), ("failed", r["counted_failure"])):
            if hit:
                add(r["step"], r["variant"], metric, r["created_at"])
    for lead in lead_rows:
        if lead["state"] not in ("replied", "opted_out"):
            continue
        mine = [r for r in rows if r["lead_id"] == lead["id"]]
        if not mine:
            continue
        last = max(mine, key=lambda r: (r["status"] in ("sent", "delivered", "read"), r["id"]))
        add(last["step"], last["variant"], lead["state"], lead["updated_at"])
    steps = [{"step": s, "variants": [{"variant": v, **{m: per.get((s, v), Counter())[m] for m in (
        "sent", "delivered", "read", "failed", "replied", "opted_out")}} for v in vs]}
             for s, vs in enumerate(steps_variants)]
    return steps, points


def test_stats_equal_counts_taken_from_the_attempts_and_leads_tables(clocked_ctx, clock):
    ctx = clocked_ctx
    clock.now = datetime(2026, 3, 28, 20, 10, tzinfo=UTC)  # Berlin's clocks go forward on the 29th
    p = workspace(ctx)
    key = sandbox_key(ctx, p, channel="sms", fail="lead", fail_after=150)
    zone = "Europe/Berlin"
    cid = new_campaign(ctx, p, steps=[sms_variants(1, 1), {"channel": "sms", "template": {"body": "Again"},
                                                            "delay_seconds": 3600}],
                       schedule={"timezone": zone, "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                 "window_start": "00:00", "window_end": "24:00",
                                 "randomize_within_window": False, "start_at": None})
    add_leads(ctx, cid, 120)
    svc.start(ctx, p, cid)
    adapter = drain(ctx)  # step 0 for all 120
    integration = receipts.integration_for_callback(ctx, key, "sandbox")
    sent = attempt_rows(ctx, cid)
    with ctx.db.connect() as conn:
        phones = dict(conn.execute(select(leads.c.id, leads.c.phone).where(leads.c.campaign_id == cid)).all())
    clock.advance(minutes=50)
    receipts.apply_events(ctx, integration, [StatusEvent(a["provider_message_id"], "delivered") for a in sent[:60]]
                          + [StatusEvent(a["provider_message_id"], "read") for a in sent[:25]])
    receipts.apply_events(ctx, integration, [ReplyEvent("phone", phones[a["lead_id"]]) for a in sent[:10]])
    clock.advance(hours=5)  # past the DST change, into step 1 (30 sent, then failures)
    drain(ctx, adapter)
    clock.advance(hours=20)
    with ctx.db.connect() as conn:
        going = list(conn.execute(select(leads.c.phone).where(leads.c.campaign_id == cid,
                                                              leads.c.state == "in_progress")
                                  .order_by(leads.c.id).limit(7)).scalars())
    receipts.apply_events(ctx, integration, [ReplyEvent("phone", phone, texts=("STOP",)) for phone in going[:4]]
                          + [ReplyEvent("phone", phone) for phone in going[4:]])
    end = clock() + timedelta(hours=1)
    start = datetime(2026, 3, 28, 0, 0, tzinfo=ZoneInfo(zone))
    for interval in ("hour", "day"):
        got = campaign_stats(ctx, p, cid, interval=interval, start=start, end=end)
        starts = rules.buckets(start, end, zone, rules.Interval(interval))
        steps, points = expected_from_tables(ctx, cid, [[0, 1], [None]], starts, end)
        assert [{"step": s["step"], "variants": [{k: v[k] for k in v if k != "reply_rate"} for v in s["variants"]]}
                for s in got["steps"]] == steps
        assert got["series"] == points
    day = campaign_stats(ctx, p, cid, interval="day", start=start, end=end)
    # Buckets start at Berlin's midnights (UTC+1, then UTC+2 after the change on the 29th).
    assert [pt["at"] for pt in day["series"]] == [datetime(2026, 3, 27, 23, tzinfo=UTC),
                                                   datetime(2026, 3, 28, 23, tzinfo=UTC),
                                                   datetime(2026, 3, 29, 22, tzinfo=UTC)]
    totals = [v for s in day["steps"] for v in s["variants"]]
    assert sum(v["sent"] for v in totals) == 150 and sum(v["failed"] for v in totals) > 0  # held at high_failure_rate
    assert sum(v["replied"] for v in totals) >= 10 and sum(v["opted_out"] for v in totals) >= 1
    assert sum(v["delivered"] for v in totals) == 60 and sum(v["read"] for v in totals) == 25
    assert all(v["reply_rate"] == (v["replied"] / v["sent"] if v["sent"] else None) for v in totals)
    hours = campaign_stats(ctx, p, cid, interval="hour", start=start, end=end)["series"]
    first = datetime(2026, 3, 27, 23, tzinfo=UTC)  # one per UTC hour (a whole-hour zone), the DST day has 23
    assert [pt["at"] for pt in hours] == [first + timedelta(hours=i)
                                          for i in range((end - first) // timedelta(hours=1))]
    # Folding the delta rows (PostgreSQL) changes no figure.
    with ctx.db.begin() as conn:
        stats_store.fold(conn, min_rows=1)
    assert campaign_stats(ctx, p, cid, interval="hour", start=start, end=end)["series"] == hours


def test_a_variant_is_the_same_after_an_in_doubt_retry(clocked_ctx, clock):
    ctx = clocked_ctx
    p = workspace(ctx)
    sandbox_key(ctx, p, channel="sms")
    cid = new_campaign(ctx, p, steps=[sms_variants(1, 1, 1)])
    add_leads(ctx, cid, 12)
    svc.start(ctx, p, cid)
    worker = Worker(ctx, {"sandbox": SandboxAdapter()}, lease_seconds=30)
    with ctx.db.begin() as conn:
        claimed = worker._claim_in(conn, dict(svc.store.get_campaign_by_id(conn, cid)), 12, clock())[0]
    assert len(claimed) == 12
    clock.advance(seconds=60)  # the worker died mid-send: the leads are in doubt
    worker.recover_expired_leases()
    for c in claimed:
        lead_service.resolve(ctx, p, cid, str(c.lead["id"]), "retry")
    clock.advance(minutes=30)  # past the earliest retry (the doubted call must have ended)
    drain(ctx)
    rows = attempt_rows(ctx, cid)
    by_lead: dict = {}
    for r in rows:
        by_lead.setdefault(r["lead_id"], []).append(r)
    assert len(by_lead) == 12 and all(len(rs) == 2 for rs in by_lead.values())
    assert all(rs[0]["variant"] == rs[1]["variant"] == variants.pick(lead, 0, [1, 1, 1])
               for lead, rs in by_lead.items())
    assert len({r["variant"] for r in rows}) > 1  # the leads did not all land in one variant
