"""The one gate check behind start, a due start_at, resume and the sweeper (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drumbeat.domain.channels import Channel, Health
from drumbeat.domain.lifecycle import TERMINAL_STATUSES, Status
from drumbeat.domain.messages import is_whatsapp_template
from drumbeat.domain.reasons import AUTO_LIFTABLE, PauseReason
from drumbeat.domain.whatsapp_templates import APPROVED, catalogue_mismatches, find_entry


@dataclass(frozen=True)
class PoolMember:
    integration_id: str
    health: str
    enabled: bool
    failed_in_run: bool = False

    @property
    def usable(self) -> bool:
        return self.enabled and self.health == Health.ACTIVE and not self.failed_in_run


def empty_pool_reason(members: list[PoolMember]) -> PauseReason:
    """Why a channel has no usable key: its account restricted or disconnected, else the
    keys failed (or there are none)."""
    enabled = [m for m in members if m.enabled]
    if any(m.health == Health.RESTRICTED for m in enabled):
        return PauseReason.ACCOUNT_RESTRICTED
    if any(m.health == Health.DISCONNECTED for m in enabled):
        return PauseReason.ACCOUNT_DISCONNECTED
    return PauseReason.ALL_KEYS_FAILED


@dataclass(frozen=True)
class TemplateFact:
    """A WhatsApp step's template as one integration's catalogue sees it: `status` None when
    the catalogue lacks it, `mismatches` from whatsapp_templates.catalogue_mismatches."""

    step: int
    integration_id: str
    name: str
    language: str
    status: str | None
    mismatches: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        if self.mismatches:
            return f"step {self.step}: " + "; ".join(self.mismatches)
        if self.status != APPROVED:
            return f"step {self.step}: template {self.name!r} ({self.language}) is {self.status}, not APPROVED"
        return None


TEMPLATE_CHANNEL = "whatsapp"


def template_facts(steps: list[dict], catalogues: Mapping[str, list[Mapping[str, Any]]], *,
                   first: int = 0) -> list[TemplateFact]:
    """Each WhatsApp template step from `first` on, against each catalogue given
    (integration id -> its entries: the key pool's integrations that have one)."""
    facts = []
    for i, step in enumerate(steps):
        template = step.get("template") or {}
        if i < first or not is_whatsapp_template(step["channel"], template):
            continue
        name, language = str(template["name"]), str(template["language"])
        for integration_id, entries in sorted(catalogues.items()):
            entry = find_entry(list(entries), name, language)
            facts.append(TemplateFact(i, integration_id, name, language, entry["status"] if entry else None,
                                      tuple(catalogue_mismatches(template, list(entries)))))
    return facts


# Without DRUMBEAT_PUBLIC_URL no email can carry its unsubscribe link (issue 20): a
# campaign with an email step is refused whole. Configuration, not a channel's trouble.
UNSUBSCRIBE_GATE_REASON = ("emails need an unsubscribe link and DRUMBEAT_PUBLIC_URL is not set: "
                           "set it to the address recipients reach this deployment at, then start again")


def unsubscribe_gate(steps: list[dict], *, public_url_set: bool) -> bool | None:
    """Gate `unsubscribe`: None (no such gate) for a campaign without an email step."""
    if not any(step["channel"] == Channel.EMAIL for step in steps):
        return None
    return public_url_set


# The gates that refuse a start or resume whole, whatever the channels say.
CAMPAIGN_GATES = ("subscription", "status", "unsubscribe")


@dataclass(frozen=True)
class Gate:
    gate: str  # subscription | status | unsubscribe | key_pool | integration_health | template
    ok: bool
    reason: str | None = None
    channel: str | None = None
    integration_id: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"gate": self.gate, "ok": self.ok, "reason": self.reason}
        if self.channel is not None:
            out["channel"] = self.channel
        if self.integration_id is not None:
            out["integration_id"] = self.integration_id
        return out


@dataclass(frozen=True)
class GateReport:
    gates: list[Gate]
    blocked_channels: dict[str, PauseReason] = field(default_factory=dict)
    open_channels: list[str] = field(default_factory=list)

    @property
    def may_run(self) -> bool:
        return self.campaign_ok and (bool(self.open_channels) or not self.blocked_channels)

    @property
    def campaign_ok(self) -> bool:
        return all(g.ok for g in self.gates if g.gate in CAMPAIGN_GATES)


def evaluate_gates(
    *,
    subscription_active: bool,
    status: str,
    pools: dict[str, list[PoolMember]],
    templates: list[TemplateFact] | tuple[TemplateFact, ...] = (),
    unsubscribe: bool | None = None,
) -> GateReport:
    """Every gate with ok and a reason. `pools` holds each channel that still has
    unfinished leads, with the integrations of the campaign's key pool on it. `templates`
    holds the WhatsApp steps still ahead, checked against each catalogue of their key pool:
    one that is not APPROVED there, or does not fit it, closes gate `template` and holds
    the WhatsApp channel with `template_rejected` (whether or not its leads are due yet).
    `unsubscribe`: gate `unsubscribe` (unsubscribe_gate), a campaign gate.

    Key failure marks are ignored here: a start or resume begins a new run.
    """
    gates = [
        Gate("subscription", subscription_active,
             None if subscription_active else "the workspace subscription is not active"),
        Gate("status", Status(status) not in TERMINAL_STATUSES,
             None if Status(status) not in TERMINAL_STATUSES else f"the campaign is {status}"),
    ]
    if unsubscribe is not None:
        gates.append(Gate("unsubscribe", unsubscribe, None if unsubscribe else UNSUBSCRIBE_GATE_REASON))
    blocked: dict[str, PauseReason] = {}
    open_channels: list[str] = []
    for channel, members in sorted(pools.items()):
        restricted = [m for m in members if m.enabled and m.health == Health.RESTRICTED]
        for m in restricted:
            gates.append(Gate("integration_health", False, "the account is restricted by the provider", channel,
                              m.integration_id))
        usable = [m for m in members if m.enabled and m.health == Health.ACTIVE]
        if usable:
            gates.append(Gate("key_pool", True, None, channel))
        else:
            disconnected = any(m.enabled and m.health == Health.DISCONNECTED for m in members)
            text = "no active integration on this channel" + (" (account disconnected)" if disconnected else "")
            gates.append(Gate("key_pool", False, text, channel))
        if restricted:
            blocked[channel] = PauseReason.ACCOUNT_RESTRICTED
        elif not usable:
            disconnected = any(m.enabled and m.health == Health.DISCONNECTED for m in members)
            blocked[channel] = PauseReason.ACCOUNT_DISCONNECTED if disconnected else PauseReason.ALL_KEYS_FAILED
        else:
            open_channels.append(channel)
    problems = [(f.integration_id, f.problem) for f in templates if f.problem]
    for integration_id, problem in problems:
        gates.append(Gate("template", False, problem, TEMPLATE_CHANNEL, integration_id))
    if problems:
        blocked.setdefault(TEMPLATE_CHANNEL, PauseReason.TEMPLATE_REJECTED)
        open_channels = [c for c in open_channels if c != TEMPLATE_CHANNEL]
    elif templates:
        gates.append(Gate("template", True, None, TEMPLATE_CHANNEL))
    return GateReport(gates, blocked, open_channels)


@dataclass(frozen=True)
class SweepDecision:
    lift: list[str] = field(default_factory=list)  # channels whose hold's cause is cleared
    replace: dict[str, PauseReason] = field(default_factory=dict)  # channel -> the cause that now holds it


def sweep_holds(holds: dict[str, str], report: GateReport) -> SweepDecision:
    """What the sweeper may do with a campaign's holds, by the same gate check as resume:
    an auto-liftable hold (`account_disconnected`, `subscription_canceled`) is lifted when
    the campaign gates pass and its channel passes; a `subscription_canceled` hold whose
    channel now fails for another reason takes that reason instead. Nothing else is touched."""
    decision = SweepDecision()
    if not report.campaign_ok:
        return decision
    for channel, reason in sorted(holds.items()):
        if PauseReason(reason) not in AUTO_LIFTABLE:
            continue
        blocked = report.blocked_channels.get(channel)
        if blocked is None:
            decision.lift.append(channel)
        elif reason == PauseReason.SUBSCRIPTION_CANCELED:
            decision.replace[channel] = blocked
    return decision
