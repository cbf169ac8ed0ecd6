"""Collect per-scenario conformance results (real vLLM vs scripted server) and write docs/conformance.md."""

from __future__ import annotations

import atexit
import re
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "conformance.md"
TITLE = "# Conformance: the agent and the scripted server against vLLM 0.33's own server"
INTRO = (
    "Written by `python -m pytest -q -m conformance tests/conformance` (tests/conformance/report.py). Each row is "
    "updated by the last run of its scenario; rows and sections a run did not touch are kept (delete this file "
    "for a clean rewrite). `ok`: the scenario passed against that server; `FAIL`: it did not."
)
HEADER = "| scenario | real vLLM 0.33 | scripted server | note |\n|---|---|---|---|"
_SECTION = re.compile(r"^## (.+)$", re.M)


@dataclass
class Row:
    """One scenario's result per server."""

    scenario: str
    real: str | None
    scripted: str | None
    note: str | None = None


_rows: dict[str, dict[str, Row]] = {}
_lock = threading.Lock()
_registered = False


def record(section: str, scenario: str, real: str | None, scripted: str | None, note: str | None = "") -> None:
    """Remember one scenario's results (the latest wins); docs/conformance.md is written when the session ends.

    None (that server did not run the scenario this session; no note) keeps what the document says already.
    """
    global _registered
    with _lock:
        _rows.setdefault(section, {})[scenario] = Row(scenario, real, scripted, note)
        if not _registered:
            atexit.register(write)
            _registered = True


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _old_rows(section_text: str) -> dict[str, list[str]]:
    """The table rows of a section already in the document: scenario -> [real, scripted, note]."""
    rows = {}
    for line in section_text.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 4 and cells[0] not in ("scenario", "---"):
            rows[cells[0]] = cells[1:]
    return rows


def _render(section: str, rows: dict[str, Row], old_text: str = "") -> str:
    """The section's table: the document's rows in their order, updated by this session's, then its new ones."""
    table = _old_rows(old_text)
    for r in rows.values():
        name = _cell(r.scenario)
        before = table.get(name, ["not run", "not run", ""])
        fresh = (r.real, r.scripted, r.note)
        table[name] = [_cell(new) if new is not None else kept for new, kept in zip(fresh, before, strict=True)]
    lines = [f"## {section}", "", f"Last run {date.today().isoformat()}.", "", HEADER]
    lines += [f"| {name} | {' | '.join(cells)} |" for name, cells in table.items()]
    return "\n".join(lines) + "\n"


def _sections(text: str) -> dict[str, str]:
    """The `## name` sections of an existing document, each with its heading, in order."""
    found = list(_SECTION.finditer(text))
    return {
        m.group(1).strip(): text[m.start() : found[i + 1].start() if i + 1 < len(found) else len(text)]
        for i, m in enumerate(found)
    }


def write(path: Path = DOC) -> Path | None:
    """Write the recorded sections into `path`, keeping the sections this session did not record."""
    with _lock:
        if not _rows:
            return None
        old = _sections(path.read_text(encoding="utf-8")) if path.exists() else {}
        new = {name: _render(name, rows, old.get(name, "")) for name, rows in _rows.items()}
        merged = {**old, **new}
        body = "\n".join(part.rstrip("\n") + "\n" for part in merged.values())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(f"{TITLE}\n\n{INTRO}\n\n{body}", encoding="utf-8")
        tmp.replace(path)
        return path
