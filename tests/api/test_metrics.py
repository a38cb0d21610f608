"""/metrics speaks Prometheus text and reflects the database."""

from drumbeat.services import campaigns as svc
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def test_metrics_show_campaigns_by_status_and_the_queue_of_due_leads(ctx, client):
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 7)
    svc.start(ctx, p, cid)
    other = new_campaign(ctx, p, name="Draft one")
    assert other
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'drumbeat_campaigns{paused_reason="",status="sending"} 1.0' in text
    assert 'drumbeat_campaigns{paused_reason="",status="draft"} 1.0' in text
    assert f'drumbeat_due_leads{{campaign_id="{cid}"}} 7.0' in text
    assert "# TYPE drumbeat_holds gauge" in text


def accepted_sends(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "drumbeat_sends_total" and s.labels == {"channel": "whatsapp", "outcome": "accepted"})


def test_metrics_show_the_sends_of_the_worker_that_drumbeat_serve_embeds(ctx, client):
    import asyncio

    from drumbeat.bootstrap import build_worker
    from drumbeat.config import Settings
    from tests.factory import started_campaign

    started_campaign(ctx, 9)
    worker = build_worker(ctx, Settings())  # its metrics live in the process's registry from now on
    before = accepted_sends(client.get("/metrics").text)  # ... where other tests' workers count too
    asyncio.run(worker.drain())
    assert accepted_sends(client.get("/metrics").text) == before + 9
