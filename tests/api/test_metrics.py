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
