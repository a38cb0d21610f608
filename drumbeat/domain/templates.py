"""`{{field}}` variables in step templates, filled from lead fields and attributes.

A variable may carry a fallback, `{{first_name|there}}`, used when the lead's value is
missing or blank. A variable with neither is *missing*: the message is never sent with a
blank in its place (the worker fails that lead with `drumbeat:missing_variable`, the
preview names it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# `{{ name }}` or `{{ name | fallback }}`; a fallback is any text without braces or bars.
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(?:\|([^{}|]*))?\}\}")
# Anything between double braces: a placeholder that is not a variable (`{{first name}}`,
# `{{ }}`) would otherwise reach the lead as literal text.
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


LEAD_FIELDS = ("first_name", "last_name", "phone", "email", "linkedin_url", "timezone")
ATTRIBUTE_PREFIX = "attributes."
# Not a lead field: the lead's one-click unsubscribe link (domain.unsubscribe), filled when
# the message is composed; without DRUMBEAT_PUBLIC_URL it has no value.
UNSUBSCRIBE_URL = "unsubscribe_url"

# Lead-level errors a rendered message can have before any provider is asked.
MISSING_VARIABLE = "drumbeat:missing_variable"
MESSAGE_TOO_LONG = "drumbeat:message_too_long"
INVALID_PARAMETER = "drumbeat:invalid_parameter"
# What each means, for the campaign's errors (the lead keeps only the code).
LEAD_LEVEL_ERRORS = {
    MISSING_VARIABLE: "a variable had no value and no fallback: the message was not sent",
    MESSAGE_TOO_LONG: "the rendered message was longer than the provider accepts: it was not sent",
    INVALID_PARAMETER: "a rendered parameter was one the provider refuses: the message was not sent",
}


def unknown_variables(text: str) -> list[str]:
    """Variables no lead can provide: anything but a lead field, `attributes.<name>` or
    `unsubscribe_url`,
    and placeholders that are no variable at all (`{{first name}}`, shown whole).
    Checked when a campaign is created or edited, so a typo never reaches a send."""
    unknown = {v for v in variables(text)
               if v not in LEAD_FIELDS and v != UNSUBSCRIBE_URL
               and not (v.startswith(ATTRIBUTE_PREFIX) and len(v) > len(ATTRIBUTE_PREFIX))}
    unknown |= {m.group(0) for m in PLACEHOLDER.finditer(text or "") if not VARIABLE.fullmatch(m.group(0))}
    rest = PLACEHOLDER.sub("", text or "")
    if "{{" in rest or "}}" in rest:
        unknown.add("an unpaired {{ or }}")
    return sorted(unknown)


def lead_values(lead: Mapping[str, object], *, unsubscribe_url: str | None = None) -> dict[str, object]:
    """The values a template may use, from one lead's fields and attributes, and its
    unsubscribe link."""
    values: dict[str, object] = {field: lead.get(field) for field in LEAD_FIELDS}
    attributes = lead.get("attributes") or {}
    if isinstance(attributes, Mapping):
        values.update({ATTRIBUTE_PREFIX + str(k): v for k, v in attributes.items()})
    values[UNSUBSCRIBE_URL] = unsubscribe_url
    return values


def variables(text: str) -> set[str]:
    return {m.group(1) for m in VARIABLE.finditer(text or "")}


def _value(values: Mapping[str, object], name: str) -> str | None:
    """The lead's value as text, or None when it is missing or blank."""
    value = values.get(name)
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None


def required_variables(texts: Iterable[str | None]) -> set[str]:
    """Variables of these texts, as written, used somewhere without a fallback."""
    return {m.group(1) for text in texts for m in VARIABLE.finditer(text or "") if m.group(2) is None}


def missing_variables(texts: Iterable[str | None], values: Mapping[str, object]) -> list[str]:
    """Variables of these texts, as written, that have no value and no fallback."""
    missing = {m.group(1) for text in texts for m in VARIABLE.finditer(text or "")
               if m.group(2) is None and _value(values, m.group(1)) is None}
    return sorted(missing)


def render(text: str | None, values: Mapping[str, object]) -> str:
    """Replace each variable with its value, else its fallback, else nothing (callers
    check `missing_variables` first: a message with a missing variable is not sent)."""

    def fill(m: re.Match) -> str:
        value = _value(values, m.group(1))
        if value is not None:
            return value
        return (m.group(2) or "").strip()

    return VARIABLE.sub(fill, text or "")
