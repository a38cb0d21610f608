"""Hand-tuned SQL kept as named blocks (`-- name --` then a one-line description).

`{workable}` in a block stands for the workable-lead predicate of the partial indexes
(tables.WORKABLE_PREDICATE), so the states are spelled in one place."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from sqlalchemy import TextClause, text

from drumbeat.store.tables import WORKABLE_PREDICATE

_BLOCK = re.compile(r"^-- (\w+) --$", re.MULTILINE)


@cache
def queries(dialect: str) -> dict[str, TextClause]:
    source = (Path(__file__).parent / f"{dialect}.sql").read_text()
    parts = _BLOCK.split(source)[1:]
    return {name: text(body.strip().rstrip(";").replace("{workable}", WORKABLE_PREDICATE))
            for name, body in zip(parts[::2], parts[1::2], strict=True)}
