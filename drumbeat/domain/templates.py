"""`{{field}}` variables in step templates, filled from lead fields and attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


LEAD_FIELDS = ("first_name", "last_name", "phone", "email", "linkedin_url", "timezone")
ATTRIBUTE_PREFIX = "attributes."


def unknown_variables(text: str) -> list[str]:
    """Variables no lead can provide: anything but a lead field or `attributes.<name>`.
    Checked when a campaign is created or edited, so a typo never reaches a send."""
    return sorted(v for v in variables(text)
                  if v not in LEAD_FIELDS and not (v.startswith(ATTRIBUTE_PREFIX) and len(v) > len(ATTRIBUTE_PREFIX)))


def lead_values(lead: Mapping[str, object]) -> dict[str, object]:
    """The values a template may use, from one lead's fields and attributes."""
    values: dict[str, object] = {field: lead.get(field) for field in LEAD_FIELDS}
    attributes = lead.get("attributes") or {}
    if isinstance(attributes, Mapping):
        values.update({ATTRIBUTE_PREFIX + str(k): v for k, v in attributes.items()})
    return values


def variables(text: str) -> set[str]:
    return set(VARIABLE.findall(text or ""))


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace each `{{name}}` with its value; a missing value renders empty."""
    return VARIABLE.sub(lambda m: "" if values.get(m.group(1)) is None else str(values[m.group(1)]), text or "")
