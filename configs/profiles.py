"""Model profiles for the vLLM launcher: tool-call parser and memory settings per model.

STDLIB ONLY. ``run_vllm.sh`` runs this file as a plain script (``python3 configs/profiles.py``)
under whatever Python has vLLM installed, so it must not import ``configs/__init__`` (which pulls
in pydantic) or any third-party package. It is also importable as ``configs.profiles``.

Script mode::

    python3 configs/profiles.py shell MODEL          # shell-safe assignments for `eval`
    python3 configs/profiles.py list                 # table of known models and family rules
    python3 configs/profiles.py set-env FILE KEY=VALUE [KEY ...]
                                                     # update a dotenv file in place; a bare KEY
                                                     # takes its value from the environment
                                                     # variable KEY (keeps secrets out of argv)
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: vLLM's interpreter may be older than ours.
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

MODELS_TOML = Path(__file__).resolve().with_name("models.toml")

#: vLLM 0.33 default for --gpu-memory-utilization, used if models.toml has no [defaults].
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.92


@dataclass(frozen=True)
class Profile:
    """How to serve one model with tool calling on vLLM."""

    model: str
    tool_call_parser: str | None
    gpu_memory_utilization: float
    max_model_len: int | None
    max_num_seqs: int | None
    quantization: str | None
    extra_args: tuple[str, ...]
    min_gpu_gib: float | None
    notes: str
    #: True when `model` is listed in models.toml; False for a family-rule or unknown match.
    exact: bool


class ProfileError(Exception):
    """models.toml is missing or malformed."""


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    if tomllib is None:
        raise ProfileError("configs/profiles.py needs Python 3.11+ (tomllib) or the tomli package")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ProfileError(f"model profiles file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"invalid TOML in {path}: {exc}") from exc
    for rule in data.get("families", []):
        try:
            re.compile(rule["pattern"])
        except (KeyError, re.error) as exc:
            raise ProfileError(f"bad family rule {rule!r} in {path}: {exc}") from exc
    return data


def _data(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    return _load(str(path or MODELS_TOML))


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "", 0) else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value in (None, "", 0) else float(value)


def _build(model: str, entry: dict[str, Any], defaults: dict[str, Any], exact: bool) -> Profile:
    merged = {**defaults, **entry}
    return Profile(
        model=model,
        tool_call_parser=merged.get("tool_call_parser") or None,
        gpu_memory_utilization=float(merged.get("gpu_memory_utilization", VLLM_DEFAULT_GPU_MEMORY_UTILIZATION)),
        max_model_len=_opt_int(merged.get("max_model_len")),
        max_num_seqs=_opt_int(merged.get("max_num_seqs")),
        quantization=merged.get("quantization") or None,
        extra_args=tuple(str(a) for a in merged.get("extra_args", ())),
        min_gpu_gib=_opt_float(merged.get("min_gpu_gib")),
        notes=str(merged.get("notes", "")),
        exact=exact,
    )


def profile_for(model: str, *, path: str | os.PathLike[str] | None = None) -> Profile:
    """The profile for `model`: an exact (then case-insensitive) models.toml entry, else the
    first matching family rule, else a profile with no tool-call parser."""
    data = _data(path)
    defaults = dict(data.get("defaults", {}))
    models: dict[str, dict[str, Any]] = data.get("models", {})
    name = model.strip()
    if name in models:
        return _build(name, models[name], defaults, exact=True)
    folded = {key.casefold(): key for key in models}
    if name.casefold() in folded:
        return _build(name, models[folded[name.casefold()]], defaults, exact=True)
    for rule in data.get("families", []):
        if re.search(rule["pattern"], name, re.IGNORECASE):
            entry = {
                "tool_call_parser": rule.get("tool_call_parser"),
                "notes": rule.get("notes", f"matched family rule {rule.get('name', rule['pattern'])}"),
            }
            return _build(name, entry, defaults, exact=False)
    entry = {
        "tool_call_parser": None,
        "notes": "Unknown model: no tool-call parser known, so tool calling will not work "
        "unless you pass --parser NAME.",
    }
    return _build(name, entry, defaults, exact=False)


def parser_for(model: str) -> str | None:
    """The vLLM `--tool-call-parser` name for `model`, or None if unknown."""
    return profile_for(model).tool_call_parser


def known_models(*, path: str | os.PathLike[str] | None = None) -> list[Profile]:
    data = _data(path)
    defaults = dict(data.get("defaults", {}))
    return [_build(m, e, defaults, exact=True) for m, e in data.get("models", {}).items()]


# ------------------------------------------------------------------------------------------
# Script mode: shell


def shell_assignments(profile: Profile) -> str:
    """Bash assignments for `eval`; every value goes through shlex.quote."""
    q = shlex.quote

    def num(value: float | int | None) -> str:
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    lines = [
        f"PARSER={q(profile.tool_call_parser or '')}",
        f"GPU_MEM={q(num(profile.gpu_memory_utilization))}",
        f"MAX_MODEL_LEN={q(num(profile.max_model_len))}",
        f"MAX_NUM_SEQS={q(num(profile.max_num_seqs))}",
        f"QUANT={q(profile.quantization or '')}",
        "EXTRA_ARGS=(" + " ".join(q(a) for a in profile.extra_args) + ")",
        f"MIN_GPU_GIB={q(num(profile.min_gpu_gib))}",
        f"PROFILE_EXACT={1 if profile.exact else 0}",
        f"PROFILE_NOTES={q(profile.notes)}",
    ]
    return "\n".join(lines) + "\n"


def format_table(*, path: str | os.PathLike[str] | None = None) -> str:
    rows = [("MODEL", "PARSER", "QUANT", "MIN GiB", "MAX LEN", "SEQS", "GPU MEM", "EXTRA ARGS")]
    for p in known_models(path=path):
        rows.append(
            (
                p.model,
                p.tool_call_parser or "-",
                p.quantization or "-",
                f"{p.min_gpu_gib:g}" if p.min_gpu_gib else "-",
                str(p.max_model_len or "-"),
                str(p.max_num_seqs or "-"),
                f"{p.gpu_memory_utilization:g}",
                " ".join(p.extra_args) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    out.append("")
    out.append("Family rules for other models (first match wins, case-insensitive):")
    for rule in _data(path).get("families", []):
        out.append(f"  /{rule['pattern']}/  ->  {rule.get('tool_call_parser') or '-'}   ({rule.get('name', '')})")
    out.append("  anything else  ->  no parser (tool calling will not work; pass --parser NAME)")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Script mode: set-env
#
# Hand-written instead of python-dotenv's set_key(): this must run under the bare Python that
# has vLLM installed (no third-party packages), and set_key() rewrites quoting and does not
# keep `export` prefixes or a missing final newline. Values are written so that python-dotenv
# (which configs/settings.py uses) reads them back unchanged.

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENTRY_RE = re.compile(r"(?P<head>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*=")
_SAFE_VALUE_RE = re.compile(r"[A-Za-z0-9_./:@%+,=\-]*\Z")


def quote_env_value(value: str) -> str:
    """`value` as a dotenv value: bare when safe, else single-quoted (literal), else
    double-quoted with backslash escapes (only when the value contains a single quote)."""
    if _SAFE_VALUE_RE.match(value):
        return value
    if "'" not in value and "\\" not in value and "\n" not in value and "\r" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _split_lines(text: str) -> list[str]:
    """Lines with their own endings kept ('\\n' or '\\r\\n'); the last may have none."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _strip_eol(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n"):
        return line[:-1], "\n"
    return line, ""


def _closing_quote(text: str, quote: str, start: int) -> int:
    """Index of the quote closing a value opened just before `start`, or -1."""
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            i += 2
            continue
        if ch == quote:
            return i
        i += 1
    return -1


def _value_span(lines: list[str], i: int, value_start: int) -> tuple[int, str]:
    """For the entry on lines[i] whose value starts at `value_start`: the index of the entry's
    last line (quoted values may span lines) and the text after the value (e.g. ' # comment')."""
    body, _ = _strip_eol(lines[i])
    rest = body[value_start:]
    stripped = rest.lstrip(" \t")
    if stripped[:1] in ("'", '"'):
        quote = stripped[0]
        offset = value_start + (len(rest) - len(stripped)) + 1
        end = _closing_quote(body, quote, offset)
        j = i
        while end < 0 and j + 1 < len(lines):
            j += 1
            body, _ = _strip_eol(lines[j])
            end = _closing_quote(body, quote, 0)
        if end < 0:  # unterminated quote: treat as a single-line value
            return i, ""
        return j, body[end + 1 :]
    match = re.search(r"[ \t]+#.*\Z", rest)
    return i, (match.group(0) if match else "")


def update_env_text(text: str, updates: dict[str, str]) -> str:
    """`text` (a dotenv file) with `updates` applied: existing entries replaced in place (every
    occurrence, keeping indentation, `export ` and trailing comments), new keys appended in
    order; all other lines, line endings and the final newline (or its absence) untouched."""
    lines = _split_lines(text)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        body, _ = _strip_eol(lines[i])
        match = _ENTRY_RE.match(body)
        if not match or body.lstrip().startswith("#"):
            out.append(lines[i])
            i += 1
            continue
        last, trailing = _value_span(lines, i, match.end())
        key = match.group("key")
        if key in updates:
            _, eol = _strip_eol(lines[last])
            out.append(f"{match.group('head')}{key}={quote_env_value(updates[key])}{trailing}{eol}")
            seen.add(key)
        else:
            out.extend(lines[i : last + 1])
        i = last + 1
    new = [f"{k}={quote_env_value(v)}" for k, v in updates.items() if k not in seen]
    result = "".join(out)
    if not new:
        return result
    if result and not result.endswith("\n"):
        # No final newline before: keep it that way after the appended lines.
        return result + newline + newline.join(new)
    return result + "".join(line + newline for line in new)


def set_env(path: str | os.PathLike[str], updates: dict[str, str]) -> Path:
    """Apply `updates` to the dotenv file at `path` (created if missing, mode 0600 since it may
    hold an API key) atomically: temp file in the same directory, then os.replace. An existing
    file keeps its mode; a symlink keeps pointing at the (updated) target."""
    for key in updates:
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid environment variable name: {key!r}")
    target = Path(os.path.realpath(path))
    try:
        with open(target, encoding="utf-8", newline="") as fh:
            text = fh.read()
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        text, mode = "", 0o600
    new_text = update_env_text(text, updates)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


# ------------------------------------------------------------------------------------------

_USAGE = """usage:
  python3 configs/profiles.py shell MODEL
  python3 configs/profiles.py list
  python3 configs/profiles.py set-env FILE KEY=VALUE|KEY [...]
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_USAGE)
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    try:
        if cmd == "shell" and len(rest) == 1:
            sys.stdout.write(shell_assignments(profile_for(rest[0])))
            return 0
        if cmd == "list" and not rest:
            sys.stdout.write(format_table())
            return 0
        if cmd == "set-env" and len(rest) >= 2:
            updates: dict[str, str] = {}
            for item in rest[1:]:
                key, sep, value = item.partition("=")
                if not sep:
                    if key not in os.environ:
                        print(f"set-env: {key} is not set in the environment", file=sys.stderr)
                        return 2
                    value = os.environ[key]
                updates[key] = value
            set_env(rest[0], updates)
            return 0
    except (ProfileError, ValueError, OSError) as exc:
        print(f"profiles.py: {exc}", file=sys.stderr)
        return 1
    sys.stderr.write(_USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(main())
