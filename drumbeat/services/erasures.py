"""Erasure of a person at their request (issue 20; API.md v1.1 Consent): `POST /api/v1/erasures`.

One transaction: the address is suppressed first (reason `manual` when it was not already
on the list: every unfinished lead with it becomes opted_out, and nothing contacts it
again), then every lead of the workspace with it, in every campaign, is erased
(domain.erasure), the person's consent events are blanked and the suppression entry keeps
only the keyed hash of the address. Finished leads keep their states, so the counts stay
right. An address no lead has still leaves its hashed suppression behind.
"""

from __future__ import annotations

from drumbeat.domain.audit import UPDATED
from drumbeat.domain.consent import SuppressionReason
from drumbeat.services import audit
from drumbeat.services.context import Context, Principal
from drumbeat.services.suppressions import given_address, suppress
from drumbeat.store import erasures as store


def erase(ctx: Context, principal: Principal, data: dict) -> dict:
    phone, email = given_address(data)
    now = ctx.clock()
    with ctx.db.begin() as conn:
        entry, _ = suppress(conn, principal.workspace_id, phone=phone, email=email,
                            reason=SuppressionReason.MANUAL, now=now, actor=principal)
        lead_ids = store.leads_with(conn, principal.workspace_id, phone=phone, email=email)
        store.erase_leads(conn, lead_ids, now)
        store.blank_consent_events(conn, principal.workspace_id, lead_ids, address=phone or email)
        audit.forget_address(conn, principal.workspace_id, phone=phone, email=email)
        store.keep_only_hash(conn, principal.workspace_id, phone=phone, email=email)
        # The record of it names who asked and how much, never the address.
        audit.record(conn, principal.workspace_id, principal, UPDATED, "suppression", entry["id"],
                     {"erased": "phone" if phone else "email", "leads_erased": len(lead_ids)}, now)
    return {"leads_erased": len(lead_ids)}
