"""Two actions racing on one campaign: exactly one wins, the other is refused, and the
timeline records only what happened."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from drumbeat.domain.exceptions import DomainError
from drumbeat.services import campaigns as svc
from tests.factory import add_leads, new_campaign, sandbox_key, workspace


def race(calls):
    barrier = Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except DomainError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_many_concurrent_starts_of_one_campaign_let_exactly_one_win(ctx):
    n = 8
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p)
    add_leads(ctx, cid, 3)
    results = race([lambda: svc.start(ctx, p, cid)] * n)
    wins = [r for r in results if isinstance(r, dict)]
    refusals = [r for r in results if isinstance(r, DomainError)]
    assert len(wins) == 1 and len(refusals) == n - 1
    assert all(r.code == "invalid_transition" and r.details == {"from": "sending", "action": "start"} for r in refusals)
    starts = [e for e in svc.get_timeline(ctx, p, cid) if e["action"] == "start"]
    assert len(starts) == 1
    assert svc.get_campaign(ctx, p, cid)["status"] == "sending"


def test_a_pause_racing_a_cancel_is_either_applied_first_or_refused(ctx):
    p = workspace(ctx)
    sandbox_key(ctx, p)
    cid = new_campaign(ctx, p, name="Race")
    add_leads(ctx, cid, 3)
    svc.start(ctx, p, cid)
    paused, canceled = race([lambda: svc.pause(ctx, p, cid), lambda: svc.cancel(ctx, p, cid, "Race")])
    assert isinstance(canceled, dict)  # cancel is allowed from sending and from paused
    final = svc.get_campaign(ctx, p, cid)
    assert final["status"] == "canceled" and final["progress"]["canceled"] == 3
    transitions = [(e["from_status"], e["to_status"]) for e in svc.get_timeline(ctx, p, cid) if e["to_status"]]
    if isinstance(paused, dict):
        assert transitions[-2:] == [("sending", "paused"), ("paused", "canceled")]
    else:
        assert paused.code == "invalid_transition" and paused.details == {"from": "canceled", "action": "pause"}
        assert transitions[-1] == ("sending", "canceled") and ("sending", "paused") not in transitions
