"""The one gate check behind start, a due start_at, resume and the sweeper (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drumbeat.domain.channels import Channel, Health
from drumbeat.domain.key_checks import KeyMark, KeyVerdict, ProbeResult, judge_mark
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
    mark: KeyMark | None = None  # its failure in the last run, when a start or resume asks (key_checks)

    @property
    def usable(self) -> bool:
        return self.enabled and self.health == Health.ACTIVE and not self.failed_in_run

    @property
    def in_service(self) -> bool:
        """Enabled and active: the key pool's own rule, failure marks aside."""
        return self.enabled and self.health == Health.ACTIVE


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
    error: dict | None = None  # {"code", "message"}: a key's probe error (gate key_pool)

    def as_dict(self) -> dict:
        out: dict = {"gate": self.gate, "ok": self.ok, "reason": self.reason}
        if self.channel is not None:
            out["channel"] = self.channel
        if self.integration_id is not None:
            out["integration_id"] = self.integration_id
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class GateReport:
    gates: list[Gate]
    blocked_channels: dict[str, PauseReason] = field(default_factory=dict)
    open_channels: list[str] = field(default_factory=list)
    # integration id -> the verdict on its mark from the last run (key_checks.judge_mark)
    keys: dict[str, KeyVerdict] = field(default_factory=dict)

    @property
    def kept_marks(self) -> list[str]:
        """The keys whose mark stays: the new run starts with them marked failed."""
        return sorted(i for i, v in self.keys.items() if not v.cleared)

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
    probes: Mapping[str, ProbeResult] | None = None,
    probe_timeout: float = 0.0,
) -> GateReport:
    """Every gate with ok and a reason. `pools` holds each channel that still has
    unfinished leads, with the integrations of the campaign's key pool on it. `templates`
    holds the WhatsApp steps still ahead, checked against each catalogue of their key pool:
    one that is not APPROVED there, or does not fit it, closes gate `template` and holds
    the WhatsApp channel with `template_rejected` (whether or not its leads are due yet).
    `unsubscribe`: gate `unsubscribe` (unsubscribe_gate), a campaign gate.

    A start or resume begins a new run, but a key marked failed in the last run (its
    PoolMember's `mark`) is in it only once its probe (`probes`: integration id -> the
    result of its connection test, run by the caller within `probe_timeout` seconds)
    clears the mark (key_checks.judge_mark); a mark with no probe result stays. A channel
    left with no usable key fails `key_pool` once per key whose mark stays, with the
    probe's reason and error. `failed_in_run` alone (no `mark`) is not looked at.
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
    keys: dict[str, KeyVerdict] = {}
    for channel, members in sorted(pools.items()):
        restricted = [m for m in members if m.enabled and m.health == Health.RESTRICTED]
        for m in restricted:
            gates.append(Gate("integration_health", False, "the account is restricted by the provider", channel,
                              m.integration_id))
        for m in members:
            if m.mark is not None:
                keys[m.integration_id] = judge_mark(m.mark, (probes or {}).get(m.integration_id),
                                                    timeout_seconds=probe_timeout)
        in_service = [m for m in members if m.in_service]
        usable = [m for m in in_service if m.mark is None or keys[m.integration_id].cleared]
        still_marked = [m for m in in_service if m.mark is not None and not keys[m.integration_id].cleared]
        if usable:
            gates.append(Gate("key_pool", True, None, channel))
        elif still_marked:
            for m in still_marked:
                verdict = keys[m.integration_id]
                gates.append(Gate("key_pool", False, verdict.reason, channel, m.integration_id, verdict.error))
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
    return GateReport(gates, blocked, open_channels, keys)


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
