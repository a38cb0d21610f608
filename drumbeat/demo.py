"""`drumbeat demo`: a workspace, sandbox keys and a two-step campaign of fake leads,
started and watched with a progress bar while API and dashboard are served."""

from __future__ import annotations

import random
import time

import typer

from drumbeat.services import campaigns, integrations, leads
from drumbeat.services.context import Context, Principal
from drumbeat.services.workspaces import init_workspace

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger"]
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def fake_leads(n: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    return [{"phone": f"+1202555{i:04d}" if i < 10_000 else f"+4420{i:08d}",
             "email": f"lead{i}@example.com",
             "first_name": rng.choice(FIRST_NAMES),
             "attributes": {"company": f"Company {i % 97}"}} for i in range(n)]


def prepare_demo(ctx: Context, n: int) -> dict:
    boot = init_workspace(ctx, "Demo workspace", f"demo-{int(time.time())}@drumbeat.local")
    owner = Principal(boot["user_id"], boot["workspace_id"], "owner")
    for channel in ("whatsapp", "email"):
        # A little latency so the progress is visible; the sandbox never contacts anybody.
        integrations.create_integration(ctx, owner, {"channel": channel, "provider": "sandbox",
                                                     "label": f"Sandbox {channel}", "credentials": {},
                                                     "config": {"latency_ms": 20}, "daily_cap": None})
    campaign = campaigns.create_campaign(ctx, owner, {
        "name": "Demo: spring promo",
        "steps": [
            {"channel": "whatsapp", "template": {"name": "spring_promo", "language": "en",
                                                 "body": "Hi {{first_name}}, offers for {{attributes.company}}!"},
             "delay_seconds": 0},
            {"channel": "email", "template": {"subject": "Following up, {{first_name}}",
                                              "body": "Hello {{first_name}}, did you see our offer?"},
             "delay_seconds": 2},
        ],
        "schedule": {"timezone": "UTC", "days": ALL_DAYS, "window_start": "00:00", "window_end": "24:00",
                     "randomize_within_window": False, "start_at": None},
        "limits": {"daily_cap": None, "weekly_cap": None, "rate_per_second": None, "ramp": None},
        "failure_policy": {"window": 50, "threshold": 0.5, "min_samples": 20},
        "integration_ids": None,
    })
    people = fake_leads(n)
    for lo in range(0, n, 10_000):
        leads.import_json(ctx, owner, campaign["id"], people[lo:lo + 10_000])
    campaigns.start(ctx, owner, campaign["id"])
    return {"token": boot["token"], "campaign_id": campaign["id"], "principal": owner}


def watch_demo(ctx: Context, info: dict) -> dict:
    """A terminal progress bar until the campaign finishes; returns the final campaign."""
    view = campaigns.get_campaign(ctx, info["principal"], info["campaign_id"])
    total = view["progress"]["total"]
    with typer.progressbar(length=total, label="Campaign progress", file=None) as bar:
        done = 0
        while True:
            view = campaigns.get_campaign(ctx, info["principal"], info["campaign_id"])
            terminal = round(view["progress"]["percent"] * total / 100)
            bar.update(terminal - done)
            done = terminal
            if view["status"] not in ("sending", "scheduled"):
                break
            time.sleep(0.5)
    typer.echo(f"Campaign {view['status']}: {view['breakdown']['sent']} messages accepted, "
               f"{view['progress']['completed']} leads completed, {view['progress']['failed']} failed.")
    return view
