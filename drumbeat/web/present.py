"""What the pages show, as plain data: the templates render it, and the live endpoint sends
the same dicts as JSON for the page's script to put into the DOM (as text, never HTML)."""

from __future__ import annotations

import json
from datetime import datetime

from drumbeat.domain.channels import ADDRESS_FIELD, Channel
from drumbeat.domain.consent import REASON_LABELS
from drumbeat.domain.lifecycle import TERMINAL_STATUSES, Status
from drumbeat.domain.reasons import EXPLANATIONS, PauseReason
from drumbeat.domain.templates import MISSING_VARIABLE

STATUS_LABELS = {
    "draft": "Draft", "scheduled": "Scheduled", "sending": "Sending", "paused": "Paused",
    "completed": "Completed", "failed": "Failed", "canceled": "Canceled",
}

# Lead states in the order of the breakdown bar.
LEAD_STATE_LABELS = {
    "completed": "Completed", "in_progress": "In progress", "replied": "Replied", "failed": "Failed",
    "opted_out": "Opted out", "in_doubt": "In doubt", "canceled": "Canceled", "not_contacted": "Not contacted",
}

NEXT_SEND_REASONS = {
    "window": "outside the sending window",
    "daily_cap": "the daily cap is reached",
    "weekly_cap": "the weekly cap is reached",
    "ramp": "the warm-up ramp's cap for today is reached",
    "integration_cap": "the keys' daily caps are reached",
    "step_delay": "waiting for the next step's delay",
    "rate": "paced by the campaign's sends per second",
    "contact_cap": "held back by the workspace contact cap",
}

# errors[].scope, as the errors table marks it (a lead's failure is the ordinary case).
ERROR_SCOPES = {"key": "key", "campaign": "campaign", "lead": ""}

# What each action's toast says once it is done (the redirect's ?done= or the script's answer).
ACTION_DONE = {"start": "Campaign started.", "pause": "Campaign paused.", "resume": "Campaign resumed.",
               "cancel": "Campaign canceled.", "duplicate": "Campaign duplicated: this is the copy, as a draft.",
               "resolve": "Lead resolved."}

# The toast after each action, by the ?done= word a redirect carries (a known word only:
# nothing typed is echoed) — or rendered directly by a page that answers a POST itself.
HEALTH_DONE = {"reconnected": "Reconnected.", "disconnected": "Marked disconnected.",
               "restriction_lifted": "Restriction lifted."}
DONE_TEXTS = {**ACTION_DONE, "created": "Integration added.", "saved": "Saved.", "enabled": "Integration enabled.",
              "disabled": "Integration disabled.", "list-saved": "Integration saved.",
              **{f"health-{k}": v for k, v in HEALTH_DONE.items()},
              "imported": "Leads imported.", "campaign-saved": "Campaign saved.",
              "suppression-added": "Address added to the suppression list.",
              "suppression-deleted": "Suppression deleted.",
              "settings-saved": "Workspace settings saved.",
              "reply-handled": "Reply marked handled.",
              "again": "Already done: this form was sent before, so nothing was done twice."}


def done_text(code: str | None) -> str:
    return DONE_TEXTS.get(code or "", "")


ACTION_LABELS = {"start": "Start", "pause": "Pause", "resume": "Resume", "cancel": "Cancel",
                 "duplicate": "Duplicate"}


def fmt_time(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value.tzinfo else value.strftime("%Y-%m-%d %H:%M:%S")


def reason_text(reason: str | None) -> str:
    try:
        return PauseReason(reason).text if reason else ""
    except ValueError:
        return ""


def available_actions(status: str, has_holds: bool, can_operate: bool) -> list[str]:
    if not can_operate:
        return []
    status = Status(status)
    actions: list[str] = []
    if status in (Status.DRAFT, Status.SCHEDULED):
        actions.append("start")
    if status is Status.SENDING:
        actions.append("pause")
    if status is Status.PAUSED or (status is Status.SENDING and has_holds):
        actions.append("resume")
    if status not in TERMINAL_STATUSES:
        actions.append("cancel")
    actions.append("duplicate")
    return actions


def actor_text(actor_type: str | None, actor_id: str | None, emails: dict[str, str]) -> str:
    if actor_type == "user":
        return emails.get(actor_id or "", "a user")
    if actor_type == "system":
        return f"system ({actor_id})" if actor_id else "system"
    return ""


def _details_text(details: dict | None) -> str:
    if not details:
        return ""
    parts = []
    for key, value in details.items():
        if key == "gates" and isinstance(value, list):
            closed = [g for g in value if isinstance(g, dict) and not g.get("ok")]
            if closed:
                parts.append("closed gates: " + "; ".join(_gate_text(g) for g in closed))
        elif isinstance(value, str | int | float | bool):
            parts.append(f"{key}: {value}")
    return ", ".join(parts)


def _gate_text(gate: dict) -> str:
    where = f" ({gate['channel']})" if gate.get("channel") else ""
    return f"{gate.get('gate')}{where}: {gate.get('reason') or 'closed'}"


def gates_view(gates: list[dict]) -> list[dict]:
    return [{"gate": g.get("gate"), "channel": g.get("channel"), "ok": bool(g.get("ok")),
             "reason": g.get("reason") or "", "text": _gate_text(g), "integration_id": g.get("integration_id"),
             "error": g.get("error")} for g in gates]


# The fixes that happen on an integration's page: the link the stop's explanation offers.
FIX_LINK_WORDS = {"update_key": "Update the key", "reconnect_account": "Reconnect the account",
                  "review_account": "Review the account"}


def fix_link(fix: dict) -> dict | None:
    words = FIX_LINK_WORDS.get(fix.get("action") or "")
    if not words or not fix.get("integration_id"):
        return None
    return {"href": f"/integrations/{fix['integration_id']}#edit", "text": f"{words} →"}


def campaign_detail(view: dict, timeline: list[dict], in_doubt: list[dict], emails: dict[str, str],
                    can_operate: bool) -> dict:
    progress = view["progress"]
    total = progress["total"]
    paused = None
    if view["status"] == Status.PAUSED and view["paused_reason"]:
        by = view["paused_by"] or {}
        explained = view.get("pause_explanation") or {}
        paused = {"reason": view["paused_reason"], "text": reason_text(view["paused_reason"]),
                  "explanation": explained.get("text") or reason_text(view["paused_reason"]),
                  "fix": fix_link(explained.get("fix") or {}),
                  "at": fmt_time(view["paused_at"]), "by": actor_text(by.get("type"), by.get("id"), emails)}
    next_send = next_send_view(view["status"], view["next_send_at"], view["next_send_reason"])
    breakdown = view["breakdown"]
    # Each tile says what it counts: progress counts leads, the breakdown counts messages.
    numbers = [
        ("not_contacted", "Leads not contacted", progress["not_contacted"]),
        ("sent", "Messages sent", breakdown["sent"]),
        ("delivered", "Messages delivered", breakdown["delivered"]),
        ("read", "Messages read", breakdown["read"]),
        ("replied", "Messages replied to", breakdown["replied"]),
        ("failed", "Messages failed", breakdown["failed"]),
        ("opted_out", "Leads opted out", progress["opted_out"]),
        ("in_doubt", "Leads in doubt", progress["in_doubt"]),
    ]
    canceled = progress.get("canceled", 0)
    bar = [{"state": s, "label": label, "count": progress.get(s, 0),
            "pct": round(100.0 * progress.get(s, 0) / total, 3) if total else 0.0}
           for s, label in LEAD_STATE_LABELS.items()]
    return {
        "id": view["id"],
        "name": view["name"],
        "status": view["status"],
        "status_label": STATUS_LABELS.get(view["status"], view["status"]),
        "paused": paused,
        "holds": [{"channel": h["channel"], "reason": h["reason"],
                   "text": (h.get("explanation") or {}).get("text") or reason_text(h["reason"]),
                   "since": fmt_time(h["since"])} for h in view["holds"]],
        "percent": progress["percent"],
        "percent_text": f"{progress['percent']:.1f}%",
        "total": total,
        "done": total - progress["not_contacted"] - progress["in_progress"] - progress["in_doubt"],
        # A canceled campaign's share of ended leads includes the canceled ones: say how many.
        "canceled_text": f"{canceled} canceled" if canceled else "",
        "numbers": [{"key": k, "label": label, "value": v} for k, label, v in numbers],
        "bar": bar,
        "next_send": next_send,
        "started_at": fmt_time(view["started_at"]),
        "finished_at": fmt_time(view["finished_at"]),
        "created_at": fmt_time(view["created_at"]),
        "steps": [{"channel": s["channel"], "delay_seconds": s["delay_seconds"],
                   "body": (s["template"] or {}).get("body", "")} for s in view["steps"]],
        "errors": [{"code": e["code"] or "", "message": e["message"] or "", "count": e["count"],
                    "scope": ERROR_SCOPES.get(e.get("scope") or "lead", ""), "samples": e["sample_lead_ids"]}
                   for e in view["errors"]],
        "timeline": [{"at": fmt_time(t["at"]),
                      "change": (f"{t['from_status'] or '—'} → {t['to_status']}" if t["to_status"]
                                 and t["from_status"] != t["to_status"] else ""),
                      "action": t["action"], "reason": t["reason"] or "", "reason_text": reason_text(t["reason"]),
                      "actor": actor_text(t["actor_type"], t["actor_id"], emails),
                      "details": _details_text(t["details"])} for t in reversed(timeline)],
        "in_doubt": [{"id": lead["id"], "who": _lead_name(lead), "address": _lead_address(lead),
                      "step": lead["current_step"] + 1, "since": fmt_time(lead["updated_at"])} for lead in in_doubt],
        "missing_variables": missing_variables_view(view.get("missing_variables") or []),
        "actions": available_actions(view["status"], bool(view["holds"]), can_operate),
        "can_operate": can_operate,
        "live": view["status"] in (Status.SENDING, Status.SCHEDULED),
    }


def next_send_view(status: str, at: datetime | None, reason: str | None) -> dict | None:
    """{"at", "why"}: when the next send happens and why not sooner, in words."""
    if at is None:
        return None
    why = "scheduled start" if status == Status.SCHEDULED else NEXT_SEND_REASONS.get(reason or "", "")
    return {"at": fmt_time(at), "why": why or "due now"}


def campaign_list_row(row: dict) -> dict:
    """One row of the campaign list (services.dashboard.campaign_page), as the page renders
    it and /campaigns/live.json sends it."""
    status = row["status"]
    return {
        "id": row["id"], "name": row["name"], "status": status, "status_label": STATUS_LABELS.get(status, status),
        "paused_reason": row["paused_reason"], "reason_text": reason_text(row["paused_reason"]),
        "created_at": fmt_time(row["created_at"]),
        "percent": row["percent"], "percent_text": f"{row['percent']:.1f}%",
        "canceled_text": f"{row['canceled_leads']} canceled" if row["canceled_leads"] else "",
        "total_leads": row["total_leads"], "replies": row["replies"],
        "channels": [{"channel": c, "word": CHANNEL_WORDS.get(c, c), "icon": CHANNEL_ICONS.get(c, "")}
                     for c in row["channels"]],
        "next_send": next_send_view(status, row["next_send_at"], row["next_send_reason"]),
        "live": status in (Status.SENDING, Status.SCHEDULED),
    }


def _lead_name(lead: dict) -> str:
    return " ".join(p for p in (lead.get("first_name"), lead.get("last_name")) if p) or f"lead {lead['id']}"


def _lead_address(lead: dict) -> str:
    return lead.get("phone") or lead.get("email") or lead.get("linkedin_url") or ""


def lead_row(lead: dict) -> dict:
    return {"id": lead["id"], "who": _lead_name(lead), "address": _lead_address(lead), "state": lead["state"],
            "step": lead["current_step"] + 1, "next_action_at": fmt_time(lead["next_action_at"]),
            "last_error": lead.get("last_error") or "", "updated_at": fmt_time(lead["updated_at"])}


EXPLANATION_TEXTS = {r.value: t for r, t in EXPLANATIONS.items()}


# --- message content: the template catalogue, preview and test send (issue 18) ------------

# Meta's template statuses in plain words; the others (IN_APPEAL, PENDING_DELETION, …) are
# spelled out from the code.
TEMPLATE_STATUS_LABELS = {"APPROVED": "Approved", "PENDING": "Pending review", "PAUSED": "Paused by Meta",
                          "REJECTED": "Rejected", "DISABLED": "Disabled"}
PROVIDER_WORDS = {"whatsapp_cloud": "WhatsApp", "twilio": "Twilio", "smtp": "the mail server",
                  "unipile": "LinkedIn (Unipile)", "sandbox": "the sandbox"}
CHANNEL_WORDS = {"whatsapp": "WhatsApp", "sms": "SMS", "voice": "Voice call", "email": "Email",
                 "linkedin": "LinkedIn"}
CHANNEL_ICONS = {"whatsapp": "💬", "sms": "📱", "voice": "📞", "email": "✉️", "linkedin": "🔗"}
# What a test send's address field is, per address kind (domain.channels.ADDRESS_FIELD).
ADDRESS_INPUTS = {"phone": ("tel", "Phone number", "+4915112345678"),
                  "email": ("email", "Email address", "you@example.com"),
                  "linkedin_url": ("url", "LinkedIn profile URL", "https://www.linkedin.com/in/you")}


def template_status_label(status: str) -> str:
    return TEMPLATE_STATUS_LABELS.get(status) or status.replace("_", " ").capitalize()


def parameter_text(counts: dict) -> str:
    """`header 1 · body 2 · buttons 1, 0`: placeholders per part, one count per button."""
    buttons = counts.get("buttons") or []
    tail = "buttons " + ", ".join(str(n) for n in buttons) if buttons else "no buttons"
    return f"header {counts.get('header', 0)} · body {counts.get('body', 0)} · {tail}"


def catalogue_rows(items: list[dict]) -> list[dict]:
    return [{"name": t["name"], "language": t["language"], "status": t["status"],
             "status_label": template_status_label(t["status"]), "category": t["category"] or "",
             "parameters": parameter_text(t["parameters"]), "synced_at": fmt_time(t["synced_at"])}
            for t in items]


def sync_problem(code: str, message: str, details: dict) -> str:
    """A refused catalogue sync in words, with the provider's own code and message."""
    if code == "unavailable":
        said = " — ".join(str(p) for p in (details.get("code"), details.get("message")) if p)
        return f"WhatsApp did not give the whole template catalogue ({said or 'no answer'}). " \
               "The templates below are the ones stored before; nothing changed."
    fields = "; ".join(f"{f['field']}: {f['message']}" for f in details.get("fields", []))
    return message + (f" ({fields})" if fields else "")


def missing_text(variable: str) -> str:
    return f"No value for {variable} — this lead would fail with 'missing variable'."


def _sms_text(sms: dict | None) -> str:
    if not sms:
        return ""
    n = sms["segments"]
    return f"{sms['encoding']} · {n} segment{'' if n == 1 else 's'}"


def _whatsapp_view(payload: dict) -> dict:
    """The template's name, language and each component's rendered parameters, as lines."""
    if payload.get("type") != "template":
        return {"template": None, "text": (payload.get("text") or {}).get("body") or ""}
    template = payload["template"]
    parts = []
    for component in template.get("components") or []:
        label = component.get("type", "")
        if component.get("sub_type") or "index" in component:
            label += f" {component.get('index', '')} ({component.get('sub_type', '')})".replace(" ()", "")
        values = []
        for p in component.get("parameters") or []:
            kind = p.get("type")
            name = f"{p['parameter_name']}: " if p.get("parameter_name") else ""
            if kind in ("text", "payload"):
                values.append(name + (str(p.get(kind) or "") or "(empty)"))
            elif isinstance(p.get(kind), dict) and "link" in p[kind]:
                values.append(f"{name}{kind} {p[kind]['link']}")
            else:
                values.append(name + json.dumps(p, ensure_ascii=False))
        parts.append({"label": label, "params": values})
    return {"template": {"name": template.get("name", ""), "language": (template.get("language") or {}).get("code", ""),
                         "parts": parts}, "text": ""}


def preview_steps(shown: dict) -> list[dict]:
    """services.content.preview's steps, ready for the page."""
    out = []
    for step in shown["steps"]:
        rendered = step["rendered"]
        view = {"index": step["step"], "number": step["step"] + 1, "channel": step["channel"],
                "channel_word": CHANNEL_WORDS.get(step["channel"], step["channel"]),
                "address": ADDRESS_INPUTS[ADDRESS_FIELD[Channel(step["channel"])]],
                "address_field": ADDRESS_FIELD[Channel(step["channel"])],
                "missing": [missing_text(v) for v in step["missing"]],
                # A missing variable is already said per variable, in words.
                "problem": (f"This lead would fail: {step['problem']['code']} — {step['problem']['message']}"
                            if step.get("problem") and step["problem"]["code"] != MISSING_VARIABLE else ""),
                "sms": _sms_text(step.get("sms")), "rendered": rendered, "whatsapp": None, "payload_json": ""}
        if "payload" in rendered:
            view["whatsapp"] = _whatsapp_view(rendered["payload"])
            view["payload_json"] = json.dumps(rendered["payload"], indent=2, ensure_ascii=False)
        out.append(view)
    return out


def missing_variables_view(items: list[dict]) -> list[dict]:
    """The campaign's `missing_variables` (absent on an older campaign object: none)."""
    return [{"variable": m["variable"], "leads": m["leads"], "samples": m["sample_lead_ids"],
             "text": f"{m['leads']} lead{'' if m['leads'] == 1 else 's'} ha{'s' if m['leads'] == 1 else 've'} "
                     f"no value for {m['variable']} and would fail with 'missing variable'."}
            for m in items]


def send_test_verdict(answer: dict, provider: str | None) -> dict:
    """A test send's answer in words: accepted with the provider's id, refused with its code
    and message, or not sent for a content problem (what the worker would do to the lead)."""
    if answer["status"] == "accepted":
        who = PROVIDER_WORDS.get(provider or "", provider or "the provider")
        mid = answer.get("provider_message_id")
        return {"ok": True, "text": f"Accepted by {who}, " + (f"message id {mid}" if mid else "no message id given")}
    error = answer.get("error") or {}
    code, message = error.get("code") or "", error.get("message") or ""
    if code.startswith("drumbeat:"):
        return {"ok": False, "text": f"Not sent: {code} — {message}. The worker would fail this lead the same way."}
    return {"ok": False, "text": f"Refused: {code} — {message}"}


def key_trouble_view(trouble: dict | None) -> dict | None:
    """A failed key on its integration's page (issue 19): when and how it failed in each
    unfinished campaign's current run, whether that campaign is paused, and whether the
    secrets were changed since (then only the test and the resume are left to do)."""
    if not trouble:
        return None
    failures = []
    for f in trouble["failures"]:
        if f["status"] == "paused":
            state = "paused it"
        elif f["status"] == "sending":
            state = "still sending through its other keys"
        else:
            state = STATUS_LABELS.get(f["status"], f["status"]).lower()
        failures.append({"at": fmt_time(f["at"]), "code": f["error_code"] or "unknown",
                         "message": f["error_message"] or "", "campaign_id": f["campaign_id"],
                         "campaign_name": f["campaign_name"], "state": state, "paused": f["status"] == "paused"})
    updated = trouble["credentials_updated_at"]
    # A billing or account failure is cleared at resume only once a person saved the
    # credentials after it (issue 21): a connection test that passes is not enough.
    account = sorted({f["error_code"] for f in trouble["failures"] if f.get("kind") == "account" and f["error_code"]})
    return {"failures": failures, "answered": trouble["answered"], "updated_at": fmt_time(updated) if updated else None,
            "paused": [f for f in failures if f["paused"]], "account_codes": account if not trouble["answered"] else []}


# Why an address is on the suppression list, in the dashboard's words.
SUPPRESSION_REASONS = {reason.value: label for reason, label in REASON_LABELS.items()}


def opt_out_rows(by_reason: dict[str | None, int]) -> list[tuple[str, int]]:
    """(label, leads) per reason in the list's order; leads whose entry was deleted last."""
    rows = [(label, by_reason[key]) for key, label in SUPPRESSION_REASONS.items() if by_reason.get(key)]
    if by_reason.get(None):
        rows.append(("Suppression since deleted", by_reason[None]))
    return rows
