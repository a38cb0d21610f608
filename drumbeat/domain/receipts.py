"""Delivery receipts move an attempt forward only (DESIGN.md §3): sent -> delivered -> read.

Duplicates and out-of-order receipts change nothing wrong: a `delivered` that arrives
after `read` is ignored, a repeated `read` is ignored. A `failed` receipt ends an
accepted attempt (and fails its lead if the lead is not yet terminal).
"""

from __future__ import annotations

from drumbeat.domain.leads import AttemptStatus

_RANK = {AttemptStatus.SENT: 1, AttemptStatus.DELIVERED: 2, AttemptStatus.READ: 3}


def status_after_receipt(current: str, receipt: str) -> AttemptStatus | None:
    """The attempt's new status, or None when the receipt changes nothing."""
    current_status, incoming = AttemptStatus(current), AttemptStatus(receipt)
    if current_status not in _RANK:
        return None  # still sending, in doubt, failed or a key error: receipts do not rewrite those
    if incoming is AttemptStatus.FAILED:
        return AttemptStatus.FAILED
    if incoming in _RANK and _RANK[incoming] > _RANK[current_status]:
        return incoming
    return None
