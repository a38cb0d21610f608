"""`{{field}}` variables in step templates, filled from lead fields and attributes."""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def variables(text: str) -> set[str]:
    return set(VARIABLE.findall(text or ""))


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace each `{{name}}` with its value; a missing value renders empty."""
    return VARIABLE.sub(lambda m: "" if values.get(m.group(1)) is None else str(values[m.group(1)]), text or "")
