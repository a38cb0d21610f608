"""`{{field}}` variables in step templates, filled from lead fields and attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
# Anything between double braces: a placeholder that is not a variable (`{{first name}}`,
# `{{ }}`) would otherwise reach the lead as literal text.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


LEAD_FIELDS = ("first_name", "last_name", "phone", "email", "linkedin_url", "timezone")
ATTRIBUTE_PREFIX = "attributes."


def unknown_variables(text: str) -> list[str]:
    """Variables no lead can provide: anything but a lead field or `attributes.<name>`,
    and placeholders that are no variable at all (`{{first name}}`, shown whole).
    Checked when a campaign is created or edited, so a typo never reaches a send."""
    unknown = {v for v in variables(text)
               if v not in LEAD_FIELDS and not (v.startswith(ATTRIBUTE_PREFIX) and len(v) > len(ATTRIBUTE_PREFIX))}
    unknown |= {m.group(0) for m in PLACEHOLDER.finditer(text or "") if not VARIABLE.fullmatch(m.group(0))}
    rest = PLACEHOLDER.sub("", text or "")
    if "{{" in rest or "}}" in rest:
        unknown.add("an unpaired {{ or }}")
    return sorted(unknown)


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
