"""Hand-tuned SQL kept as named blocks (`-- name --` then a one-line description)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, text

_BLOCK = re.compile(r"^-- (\w+) --$", re.MULTILINE)


@cache
def queries(dialect: str) -> dict[str, TextClause]:
    source = (Path(__file__).parent / f"{dialect}.sql").read_text()
    parts = _BLOCK.split(source)[1:]
    return {name: text(body.strip().rstrip(";")) for name, body in zip(parts[::2], parts[1::2], strict=True)}
