"""Every stop in plain words: a hold or a pause (its reason and details) as one sentence
naming the channel and what failed, and the action that fixes it (issue 19; the reasons'
short texts are in domain.reasons).

Pure: the details are the JSON a hold or a pause carries (services.holds writes them);
details from older releases (fewer fields) still give a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from drumbeat.domain.key_checks import MarkKind
from drumbeat.domain.reasons import PauseReason

CHANNEL_NAMES = {"whatsapp": "WhatsApp", "sms": "SMS", "voice": "voice", "email": "email",
                 "linkedin": "LinkedIn"}

# The fix of each reason: what the console links to.
FIX_ACTIONS: dict[PauseReason, str] = {
    PauseReason.MANUAL: "resume",
    PauseReason.ALL_KEYS_FAILED: "update_key",
    PauseReason.HIGH_FAILURE_RATE: "review_errors",
    PauseReason.ACCOUNT_DISCONNECTED: "reconnect_account",
    PauseReason.ACCOUNT_RESTRICTED: "review_account",
    PauseReason.SUBSCRIPTION_CANCELED: "renew_subscription",
    PauseReason.TEMPLATE_REJECTED: "edit_template",
}

# A due start the gate `unsubscribe` refused pauses as `manual` with that gate in its
# details (the fix is the deployment's configuration, not a channel's).
SET_PUBLIC_URL = "set_public_url"
UNSUBSCRIBE_GATE_TEXT = ("Emails need an unsubscribe link and DRUMBEAT_PUBLIC_URL is not set; set it to the "
                         "address recipients reach Drumbeat at, restart Drumbeat, then resume.")

# pause_details.keys[].kind of a key whose failure a passing connection test does not
# clear (domain.key_checks.MarkKind.ACCOUNT).
ACCOUNT_KIND = MarkKind.ACCOUNT.value

MESSAGE_CHARS = 120  # a provider's text beyond this is cut: the sentence stays one line


@dataclass(frozen=True)
class Explanation:
    text: str
    action: str
    integration_id: str | None = None

    def as_dict(self) -> dict:
        fix: dict = {"action": self.action}
        if self.integration_id is not None:
            fix["integration_id"] = self.integration_id
        return {"text": self.text, "fix": fix}


def explain(reason: str, details: dict | None, channel: str | None = None) -> Explanation:
    """One plain sentence for a hold or a pause with this reason and details (`channel`:
    the hold's, when its details do not name it)."""
    why = PauseReason(reason)
    d = details or {}
    channel = _channel(d.get("channel") or channel or _closed_gate_channel(d))
    action = FIX_ACTIONS[why]
    if why is PauseReason.ALL_KEYS_FAILED:
        keys = [k for k in d.get("keys") or [] if isinstance(k, dict)]
        answered = [k for k in keys if k.get("code")]
        if not answered:
            return Explanation(f"Every {channel} key failed or is disabled in this run; update a key, then resume.",
                               action, keys[0]["integration_id"] if keys else None)
        said = "; ".join(_key_answer(k) for k in answered)
        if any(k.get("kind") == ACCOUNT_KIND for k in answered):
            # A billing or account error: a resume's connection test cannot clear it (issue 21).
            return Explanation(f"Every {channel} key failed: {said}; that is a billing or account matter: fix it with "
                               "the provider, save the key's credentials again to confirm, then resume.", action,
                               answered[0].get("integration_id"))
        return Explanation(f"Every {channel} key failed: {said}; update the key, then resume.", action,
                           answered[0].get("integration_id"))
    if why is PauseReason.ACCOUNT_DISCONNECTED:
        return Explanation(f"The {channel} account{_label(d)} is disconnected; reconnect it and sending resumes "
                           "by itself.", action, d.get("integration_id"))
    if why is PauseReason.ACCOUNT_RESTRICTED:
        return Explanation(f"The provider restricted the {channel} account{_label(d)}; review it with the provider, "
                           "then resume.", action, d.get("integration_id"))
    if why is PauseReason.SUBSCRIPTION_CANCELED:
        return Explanation("The workspace subscription is not active; renew it and sending resumes by itself.",
                           action)
    if why is PauseReason.TEMPLATE_REJECTED:
        step = f" of step {d['step'] + 1}" if isinstance(d.get("step"), int) else ""
        answer = f": {_answer(d.get('error_code'), d.get('error_message'))}" if d.get("error_code") else ""
        who = channel[:1].upper() + channel[1:]
        return Explanation(f"{who} rejected the message template{step}{answer}; edit the template, then resume.",
                           action)
    if why is PauseReason.HIGH_FAILURE_RATE:
        counted = f"{d['failed']} of the last {d['counted']} " if "failed" in d and "counted" in d else "Too many "
        return Explanation(f"{counted}{channel} sends failed; check the lead list and the errors, then resume.",
                           action)
    if why is PauseReason.MANUAL and _gate_closed(d, "unsubscribe"):
        return Explanation(UNSUBSCRIBE_GATE_TEXT, SET_PUBLIC_URL)
    if d.get("previous_reason") in FIX_ACTIONS:  # the sweeper gave up lifting a cause that kept coming back
        again = PauseReason(d["previous_reason"]).value.replace("_", " ")
        return Explanation(f"Automatic resume stopped: {again} kept coming back; fix the cause, then resume.",
                           action, d.get("integration_id"))
    return Explanation("Paused by a person; resume it to send again.", action)


def _channel(channel: str | None) -> str:
    return CHANNEL_NAMES.get(channel or "", channel or "channel")


def _closed_gate_channel(d: dict) -> str | None:
    """A pause the gates placed (a due start they refused) names its channel in its gates."""
    gates = d.get("gates") if isinstance(d.get("gates"), list) else []
    return next((g["channel"] for g in gates if isinstance(g, dict) and not g.get("ok") and g.get("channel")), None)


def _gate_closed(d: dict, name: str) -> bool:
    gates = d.get("gates") if isinstance(d.get("gates"), list) else []
    return any(isinstance(g, dict) and g.get("gate") == name and not g.get("ok") for g in gates)


def _label(d: dict) -> str:
    label = d.get("integration_label")
    return f" '{label}'" if label else ""


def _key_answer(key: dict) -> str:
    name = f"'{key['label']}'" if key.get("label") else f"key {key.get('integration_id')}"
    at = _clock(key.get("at"))
    return f"{name} answered {_answer(key['code'], key.get('message'))}" + (f" at {at}" if at else "")


def _answer(code: str, message: str | None) -> str:
    if not message or message == code:
        return code
    message = message.strip()
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 1].rstrip() + "…"
    return f"{code} ({message})"


def _clock(at: str | None) -> str | None:
    """HH:MM UTC of an ISO time (the page shows it in the viewer's zone)."""
    try:
        return datetime.fromisoformat(at).astimezone(UTC).strftime("%H:%M UTC") if at else None
    except (TypeError, ValueError):
        return None
