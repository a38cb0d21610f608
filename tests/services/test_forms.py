"""services.forms: a form's nonce is used together with its effect, so that posting the same
form twice — even at the same moment from two threads — does one thing. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from drumbeat.domain.exceptions import ValidationFailed
from drumbeat.services import campaigns, forms
from drumbeat.services.context import Context
from drumbeat.store.tables import campaigns as campaigns_table
from drumbeat.store.tables import form_submissions
from tests.factory import campaign_data, workspace

THREADS = 6
DEADLINE = 30  # seconds a condition may take before the test fails


def names(ctx: Context) -> list[str]:
    with ctx.db.begin() as conn:
        return list(conn.execute(select(campaigns_table.c.name)).scalars())


def _someone_waits_on_a_lock(ctx: Context) -> bool:
    """PostgreSQL: another session waits for a lock (here: the nonce's primary key entry)."""
    with ctx.db.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one() > 0


def test_simultaneous_posts_of_one_form_have_exactly_one_effect(ctx):
    owner = workspace(ctx)
    start = threading.Barrier(THREADS)
    entered: list[str] = []
    postgres = ctx.db.dialect.name == "postgresql"

    def effect(c: Context) -> dict:
        entered.append(threading.current_thread().name)
        if postgres:  # hold the nonce until another post is shown to be waiting on it
            until = time.monotonic() + DEADLINE
            while not _someone_waits_on_a_lock(ctx):
                assert time.monotonic() < until, "no second post ever waited on the nonce"
                time.sleep(0.01)  # polls a condition; the deadline, not the pause, decides
        return campaigns.create_campaign(c, owner, campaign_data("Once"))

    def post(_: int) -> forms.Once:
        start.wait()
        return forms.once(ctx, owner, "nonce-1", effect, lambda made: f"/campaigns/{made['id']}")

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(post, range(THREADS)))
    made = [a for a in answers if not a.repeated]
    assert len(entered) == 1 and len(made) == 1 and names(ctx) == ["Once"]
    first_url = f"/campaigns/{made[0].result['id']}"
    assert all(a.url == first_url and a.result is None for a in answers if a.repeated)


@pytest.mark.parametrize("joined", [True, False])
def test_a_refused_effect_leaves_the_nonce_free_for_the_next_post(ctx, joined):
    owner = workspace(ctx)

    def refused(c: Context) -> dict:
        campaigns.create_campaign(c, owner, campaign_data("Half done"))
        raise ValidationFailed([{"field": "name", "message": "no"}])

    with pytest.raises(ValidationFailed):
        forms.once(ctx, owner, "n", refused, lambda made: "/x", joined=joined)
    if joined:  # the use case ran inside the nonce's transaction: rolled back with it
        assert names(ctx) == []
    done = forms.once(ctx, owner, "n", lambda c: campaigns.create_campaign(c, owner, campaign_data("Second")),
                      lambda made: f"/campaigns/{made['id']}", joined=joined)
    assert not done.repeated and "Second" in names(ctx)


def test_another_workspace_cannot_read_the_result_of_a_nonce(ctx):
    owner, other = workspace(ctx), workspace(ctx, "Other")
    forms.once(ctx, owner, "n", lambda c: campaigns.create_campaign(c, owner, campaign_data()),
               lambda made: f"/campaigns/{made['id']}")
    again = forms.once(ctx, other, "n", lambda c: campaigns.create_campaign(c, other, campaign_data()),
                       lambda made: "/x")
    assert again.repeated and again.url is None and len(names(ctx)) == 1


def test_nonces_are_purged_a_day_after_use(ctx, clock):
    from dataclasses import replace
    ctx = replace(ctx, clock=clock)
    owner = workspace(ctx)
    forms.once(ctx, owner, "old", lambda c: {}, lambda _: "/a")
    clock.advance(hours=23)
    forms.once(ctx, owner, "new", lambda c: {}, lambda _: "/b")
    with ctx.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(form_submissions)).scalar_one() == 2
    clock.advance(hours=2)
    forms.once(ctx, owner, "newer", lambda c: {}, lambda _: "/c")
    with ctx.db.begin() as conn:
        kept = set(conn.execute(select(form_submissions.c.nonce)).scalars())
    assert kept == {"new", "newer"}
