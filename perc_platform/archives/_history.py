"""The search history: what was looked up, where, and why a source was chosen (``<cache>/archives/history.jsonl``)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from perc_platform.archives._fetch import archive_path
from perc_platform.storage.cache import entry_lock

__all__ = ["LookupRecord", "record_lookup", "search_history"]


class LookupRecord(BaseModel):
    """One lookup: the query, the preference, what was tried and the outcome (source, id, reason)."""

    model_config = ConfigDict(extra="ignore")

    time: str = Field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    query: str
    prefer: str | None = None
    source: str | None = None
    source_id: str | None = None
    url: str | None = None
    reason: str = ""
    tried: list[str] = Field(default_factory=list)
    ok: bool = True


def _history_file() -> Any:
    return archive_path("history.jsonl")


def record_lookup(entry: LookupRecord) -> LookupRecord:
    """Append one lookup to the history (process-safe) and return it."""
    path = _history_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(entry.model_dump_json() + "\n")
    return entry


def search_history(query: str | None = None, limit: int | None = None) -> list[LookupRecord]:
    """Past lookups, oldest first (only those for ``query`` when given; the last ``limit`` when given)."""
    path = _history_file()
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = LookupRecord.model_validate(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash is skipped, not fatal
        if query is None or row.query.upper() == query.strip().upper():
            rows.append(row)
    return rows[-limit:] if limit else rows
