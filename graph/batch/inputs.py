"""Read batch questions from JSONL, CSV or plain text (a file or stdin), with line numbers and stable ids."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text", ".text": "text"}
RESULT_FIELDS = (
    "id",
    "line",
    "question",
    "status",
    "answer",
    "error",
    "stopped",
    "steps",
    "usage",
    "latency_ms",
    "retries",
    "started_at",
    "tool_errors",
    "denied_calls",
    "run",
)
"""The fields batch writes; an input field with one of these names is carried as `input_<name>`."""

NOT_UTF8 = (
    "{name} is not UTF-8: byte 0x{byte:02x} on line {line}, column {column}. Save it as UTF-8 (for a GBK file: "
    "iconv -f GBK -t UTF-8 {name} > questions-utf8{suffix})."
)
UTF16 = "{name} is UTF-16 text; save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 {name} > questions-utf8{suffix})."
NO_QUESTION_COLUMN = "{name} has no 'question' column; its header is: {header}."
DUPLICATE_ID = (
    "id {id!r} is on line {first} and on line {second} of {name}; ids must be unique so --resume can tell rows apart."
)


class BatchInputError(ValueError):
    """The input or output file cannot be used; the message is one line (exit status 2)."""


@dataclass
class Question:
    """One input row: its id, line number, question and carried fields, or why it cannot run."""

    id: str | int | float
    line: int
    question: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def key(self) -> str:
        """The id as the string that identifies the row in the output (for --resume)."""
        return str(self.id)


def detect_format(name: str, data: bytes, override: str | None = None) -> str:
    """`override`, else the format the extension names, else JSONL if the first line is an object, else text."""
    if override:
        return override
    fmt = EXTENSIONS.get(Path(name).suffix.lower()) if name != "-" else None
    if fmt:
        return fmt
    first = next((line for line in data.lstrip(b"\xef\xbb\xbf").splitlines() if line.strip()), b"")
    return "jsonl" if first.lstrip().startswith(b"{") else "text"


def decode(data: bytes, name: str) -> str:
    """The input as text: UTF-8 with or without a BOM; anything else is a one-line BatchInputError."""
    suffix = Path(name).suffix if name != "-" else ".txt"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BatchInputError(UTF16.format(name=name, suffix=suffix))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        raise BatchInputError(
            NOT_UTF8.format(
                name=name,
                byte=data[err.start],
                line=data.count(b"\n", 0, err.start) + 1,
                column=err.start - line_start + 1,
                suffix=suffix,
            )
        ) from None


def read_source(path: str) -> bytes:
    """The bytes of INPUT ("-" is stdin)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise BatchInputError(f"cannot read {path}: {err.strerror or err}.") from None


def load_questions(path: str, fmt: str | None = None) -> tuple[list[Question], int]:
    """Read INPUT into questions (bad rows included, with their problem) and the number of blank lines skipped."""
    data = read_source(path)
    name = "stdin" if path == "-" else path
    text = decode(data, name)
    kind = detect_format(path, data, fmt)
    rows, blank = {"jsonl": _jsonl, "csv": _csv, "text": _text}[kind](text, name)
    if not rows:
        raise BatchInputError(f"{name} has no questions.")
    seen: dict[str, int] = {}
    for row in rows:
        if row.key in seen:
            raise BatchInputError(DUPLICATE_ID.format(id=row.id, first=seen[row.key], second=row.line, name=name))
        seen[row.key] = row.line
    return rows, blank


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.removesuffix("\r") for line in lines]


def _text(text: str, name: str) -> tuple[list[Question], int]:
    lines = _lines(text)
    rows = [Question(id=n, line=n, question=line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    return rows, len(lines) - len(rows)


def _jsonl(text: str, name: str) -> tuple[list[Question], int]:
    return [_json_row(n, line) for n, line in enumerate(_lines(text), 1)], 0


def _json_row(n: int, line: str) -> Question:
    if not line.strip():
        return Question(id=n, line=n, question=None, problem=f"line {n}: empty line (expected a JSON object)")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        problem = f"line {n}: invalid JSON ({err.msg} at column {err.colno})"
        return Question(id=n, line=n, question=None, problem=problem)
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
        return Question(
            id=n, line=n, question=None, problem=f'line {n}: expected a JSON object with a "question", got {kind}'
        )
    raw_id, question = obj.pop("id", None), obj.pop("question", None)
    row = Question(id=n if raw_id is None else raw_id, line=n, question=question, fields=obj)
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, float, type(None))) or raw_id == "":
        row.id, row.fields = n, {"input_id": raw_id, **obj}
        row.problem = f"line {n}: the id must be a non-empty string or a number, got {json.dumps(raw_id)}"
    elif question is None:
        row.problem = f'line {n}: no "question" field'
    elif not isinstance(question, str):
        row.question, row.fields = None, {"input_question": question, **obj}
        row.problem = f'line {n}: "question" must be a string, got {json.dumps(question, ensure_ascii=False)}'
    elif not question.strip():
        row.problem = f"line {n}: the question is empty"
    else:
        row.question = question.strip()
    return row


def _csv(text: str, name: str) -> tuple[list[Question], int]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Question] = []
    blank, header, end = 0, None, 0
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                blank += 1
                continue
            if header is None:
                header = [cell.strip() for cell in record]
                lowered = [h.lower() for h in header]
                if "question" not in lowered:
                    raise BatchInputError(NO_QUESTION_COLUMN.format(name=name, header=", ".join(header)))
                q_col, id_col = lowered.index("question"), lowered.index("id") if "id" in lowered else None
                continue
            rows.append(_csv_row(start, record, header, q_col, id_col))
    except csv.Error as err:
        raise BatchInputError(f"{name} is not valid CSV at line {reader.line_num}: {err}.") from None
    return rows, blank


def _csv_row(n: int, record: list[str], header: list[str], q_col: int, id_col: int | None) -> Question:
    raw_id = record[id_col].strip() if id_col is not None and id_col < len(record) else ""
    carried = {h: v for i, (h, v) in enumerate(zip(header, record)) if i not in (q_col, id_col)}
    question = record[q_col].strip() if q_col < len(record) else ""
    row = Question(id=raw_id or n, line=n, question=question or None, fields=carried)
    if len(record) != len(header):
        row.problem = f"line {n}: {len(record)} fields, but the header has {len(header)}"
    elif not question:
        row.problem = f"line {n}: the question is empty"
    return row
