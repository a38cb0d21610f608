"""A resume that checks the keys (issue 21; DESIGN.md §5, API.md v1.1 "Trust without a person").

A key marked failed in a campaign's last run gets its chance in the new run only after a
connection test (the integration's probe: one cheap authenticated read) answers for it.
The service runs the probes (I/O, bounded, concurrently) and hands their results here;
`judge_mark` decides, for each marked key, whether its mark is cleared, and if not, why in
words and with which error. `gates.evaluate_gates` applies the verdicts to the key pools.

    a key marked failed in the last run
    ├── no probe result (not tested: the sweeper on a sending campaign) ... keeps its mark
    ├── probe timed out / provider unreachable ............................ keeps its mark
    ├── probe refused (the provider's error) .............................. keeps its mark
    └── probe passed
        ├── the mark came from an authentication error .................... cleared
        └── the mark came from a billing or account error
            ├── a person saved the key's credentials since the mark ...... cleared
            └── else ...................................................... keeps its mark:
                a passing read does not show that an account is paid up or unlocked

Pure: no I/O; the mark's kind (authentication or account) is the channel adapters' to
tell (channels.errors.key_mark_kind), and "a person answered" is the service's reading of
the integration's `credentials_updated_at`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class MarkKind(StrEnum):
    AUTH = "auth"        # the credential was refused: a probe that passes shows it works again
    ACCOUNT = "account"  # billing, a locked or unverified account or sender: a person must say it is fixed


class ProbeOutcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"          # the provider answered with an error
    TIMEOUT = "timeout"          # no answer within the probe's timeout
    UNREACHABLE = "unreachable"  # the provider could not be reached (connection refused, DNS, TLS)


@dataclass(frozen=True)
class KeyMark:
    """A key's failure in the campaign's last run, as the key pool carries it."""

    integration_id: str
    label: str | None
    code: str | None
    message: str | None
    kind: MarkKind
    answered: bool = False  # a person saved the key's credentials after the mark


@dataclass(frozen=True)
class ProbeResult:
    integration_id: str
    outcome: ProbeOutcome
    code: str | None = None
    message: str | None = None

    @property
    def error(self) -> dict | None:
        if self.outcome is ProbeOutcome.OK:
            return None
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class KeyVerdict:
    integration_id: str
    cleared: bool
    reason: str | None = None   # why the mark stays, in words (the gate's reason)
    error: dict | None = None   # {"code", "message"}: the probe's error, else the mark's

    def as_dict(self) -> dict:
        return {"integration_id": self.integration_id, "cleared": self.cleared, "reason": self.reason,
                "error": self.error}


def _name(mark: KeyMark) -> str:
    return f"'{mark.label}'" if mark.label else f"key {mark.integration_id}"


def _answer(code: str | None, message: str | None) -> str:
    code = code or "an unknown error"
    return f"{code} ({message})" if message and message != code else code


def judge_mark(mark: KeyMark, probe: ProbeResult | None, *, timeout_seconds: float) -> KeyVerdict:
    """Whether the key's mark from the last run is cleared, by its probe's result."""
    name, failed = _name(mark), _answer(mark.code, mark.message)
    mark_error = {"code": mark.code, "message": mark.message}
    if probe is None:
        return KeyVerdict(mark.integration_id, False, f"{name} failed in this run with {failed} and has not been "
                          "tested since: it stays out of the key pool", mark_error)
    if probe.outcome is ProbeOutcome.TIMEOUT:
        return KeyVerdict(mark.integration_id, False,
                          f"{name} failed in the last run with {failed}, and its connection test got no answer "
                          f"within {timeout_seconds:g} s: it stays out until the provider answers the test",
                          probe.error)
    if probe.outcome is ProbeOutcome.UNREACHABLE:
        return KeyVerdict(mark.integration_id, False,
                          f"{name} failed in the last run with {failed}, and the provider could not be reached to "
                          f"test it ({_answer(probe.code, probe.message)}): check its address (base_url) or try "
                          "again later", probe.error)
    if probe.outcome is ProbeOutcome.REFUSED:
        return KeyVerdict(mark.integration_id, False,
                          f"{name} still fails its connection test: {_answer(probe.code, probe.message)}; update "
                          "the key, then resume", probe.error)
    if mark.kind is MarkKind.ACCOUNT and not mark.answered:
        return KeyVerdict(mark.integration_id, False,
                          f"{name} failed in the last run with {failed}, a billing or account error: its connection "
                          "test passes, but that does not show the account is fixed. Fix it with the provider, "
                          "then save the key's credentials again to confirm, and resume", mark_error)
    return KeyVerdict(mark.integration_id, True)


def judge_marks(marks: list[KeyMark], probes: Mapping[str, ProbeResult], *,
                timeout_seconds: float) -> dict[str, KeyVerdict]:
    """integration id -> its verdict, for every mark."""
    return {m.integration_id: judge_mark(m, probes.get(m.integration_id), timeout_seconds=timeout_seconds)
            for m in marks}

