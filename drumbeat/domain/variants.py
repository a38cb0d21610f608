"""Message variants of a step (A/B tests): which one a lead gets, and what it renders.

A step may hold 2 to 5 variants, each a template with a positive weight. A lead's variant
is a pure function of its id and the step's position through SHA-256 (never Python's
`hash()`, which is salted per process): the same in every worker, on retry, resume,
in-doubt retry and after a crash, so the split is reproducible and an attempt re-made for
the same lead and step always renders the same variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

MIN_VARIANTS = 2
MAX_VARIANTS = 5


def pick(lead_id: int, step: int, weights: Sequence[int]) -> int:
    """The index of the variant lead `lead_id` gets at `step`, each with probability
    weight / sum(weights). The first 8 bytes of SHA-256("lead_id:step") as a number u in
    [0, 2^64) fall in variant i when u * total >> 64 is in i's share of [0, total)."""
    total = sum(weights)
    if not weights or total <= 0 or any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    digest = hashlib.sha256(f"{int(lead_id)}:{int(step)}".encode()).digest()
    point = (int.from_bytes(digest[:8], "big") * total) >> 64  # 0 <= point < total
    for index, weight in enumerate(weights):
        if point < weight:
            return index
        point -= weight
    raise AssertionError("unreachable: point < total")


def has_variants(step: Mapping[str, Any]) -> bool:
    return bool(step.get("variants"))


def variant_of(step: Mapping[str, Any], position: int, lead_id: int | None) -> int | None:
    """The lead's variant of this step (None for a step without variants; a preview
    without a lead shows the first)."""
    if not has_variants(step):
        return None
    if lead_id is None:
        return 0
    return pick(lead_id, position, [v["weight"] for v in step["variants"]])


def template_of(step: Mapping[str, Any], variant: int | None) -> dict:
    """The template that variant `variant` of the step sends (a step without variants: its
    own template, whatever `variant` says)."""
    if not has_variants(step) or variant is None:
        return step["template"]
    return step["variants"][variant]["template"]


def templates_of(step: Mapping[str, Any]) -> list[dict]:
    """Every template the step may send (one per variant)."""
    if has_variants(step):
        return [v["template"] for v in step["variants"]]
    return [step["template"]]


def with_variant(step: Mapping[str, Any], variant: int | None) -> dict:
    """The step as a plain one-template step of that variant (what compose renders)."""
    return {**step, "template": template_of(step, variant)}
