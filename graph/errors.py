"""Turn model-server failures into one clear line that says what to do, with an exit code."""

from __future__ import annotations

import errno
import re
import sqlite3
from typing import Any

import click

from configs.settings import ConfigError

# httpx and openai are imported inside the functions that need them: the CLI imports this module for
# AgentError and the exit codes, and `--help` must stay fast.

# The exit codes of every command (README "Exit codes"): the one table.
EXIT_OK = 0
EXIT_FAILURE = 1  # anything else, e.g. some batch rows failed
EXIT_USAGE = 2  # a usage or configuration error
EXIT_ENDPOINT = 3  # the model server (or the thread database) is unreachable or refuses
EXIT_INTERRUPTED = 130  # Ctrl-C

UNREACHABLE = (
    "Cannot reach the model server at {base_url}. Start it with ./run_vllm.sh, "
    "or set OPENAI_API_BASE (or --base-url) to your OpenAI-compatible endpoint."
)
DROPPED = (
    "The model server at {base_url} closed the connection in the middle of a reply. Check its log: it may "
    "have crashed or restarted."
)
TIMEOUT = "The model server at {base_url} did not answer in time. Check its log, or raise AGENT_REQUEST_TIMEOUT."
UNAUTHORIZED = (
    "The model server at {base_url} refused the API key (401 Unauthorized). Set OPENAI_API_KEY to the "
    "key vLLM was started with (--api-key / VLLM_API_KEY)."
)
MODEL_NOT_SERVED = (
    "The model '{model}' is not served at {base_url}; it serves: {served}. Set AGENT_MODEL or pass "
    "--model with one of those."
)
NO_TOOL_PARSER = (
    "The server at {base_url} was started without tool calling. Restart vLLM with "
    "--enable-auto-tool-choice --tool-call-parser {parser} (./run_vllm.sh adds both)."
)
CONTEXT_TOO_LONG = (
    "The conversation no longer fits the model's context window ({detail}). Shorten the question, start "
    "a new thread (/new in the REPL, a new --thread, or a new conversation in the UI), or restart vLLM with a "
    "larger --max-model-len."
)
MAX_TOKENS_TOO_BIG = (
    "AGENT_MAX_TOKENS={asked} is more than the server's whole context window (max_model_len={limit}). "
    "Lower AGENT_MAX_TOKENS, or restart vLLM with a larger --max-model-len."
)
BAD_REQUEST = "The model server rejected the request (400): {detail}"
DISK_FULL = (
    "Cannot save the conversation: writing the checkpoint file failed ({detail}); its disk is probably full. "
    "Free some space, or set AGENT_CHECKPOINT_DB to a file on another disk."
)
CHECKPOINT_DAMAGED = (
    "The checkpoint file (AGENT_CHECKPOINT_DB) is not a SQLite database or is damaged ({detail}); it was left as "
    "it is. Move it aside, or set AGENT_CHECKPOINT_DB to another file."
)
CANNOT_WRITE_FILE = (
    "Cannot write {path}: {why}. Use a writable location (AGENT_CHECKPOINT_DB for the conversation file)."
)
CHECKPOINT_UNOPENABLE = (
    "Cannot open the checkpoint file (AGENT_CHECKPOINT_DB): {detail}. Check that its directory exists and is "
    "writable, or set AGENT_CHECKPOINT_DB to another file."
)
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
HIDDEN_PATH = "<path>"  # how vLLM's sanitize_message writes a file path in an error message
LIST_MODELS_TIMEOUT = 5.0  # seconds for the GET /models that names a model vLLM's 404 hid
SERVER_FAILED = "The model server failed while answering: {detail}. Try again; if it repeats, check the vLLM log."


# RuntimeError too: LangGraph's API server (Studio) shows the message of RuntimeError/ValueError/... only;
# for other exceptions a run's error reads "An internal error occurred".
class AgentError(click.ClickException, RuntimeError):
    """An expected failure: `str(e)` is the one line to show, `exit_code` the process status.

    The one error class of every interface: click prints it as one line and exits with `exit_code`, the UI
    shows `str(e)`, a batch ends with it.
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class; each error has its own

    def show(self, file: object = None) -> None:
        """Print `Error: <one line>` on stderr."""
        click.secho(f"Error: {self.message}", err=True, fg="red")


class ModelNotFoundError(RuntimeError):
    """The endpoint serves no model, or not the one asked for."""


def _detail(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(message, str) and message:
            return message
    return err.message


def _dropped(exc: BaseException) -> bool:
    """The connection closed mid-reply (httpx.RemoteProtocolError somewhere in the cause chain)."""
    import httpx

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, httpx.RemoteProtocolError):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def no_tool_parser(exc: BaseException) -> bool:
    """vLLM's 400 for a request with tools to a server started without tool calling."""
    import openai

    if not isinstance(exc, openai.APIError) or getattr(exc, "status_code", None) != 400:
        return False
    detail = _detail(exc)
    return "--enable-auto-tool-choice" in detail or "requires --tool-call-parser" in detail


def explain(exc: BaseException, *, base_url: str, model: str | None) -> AgentError:
    """Map an exception from a model call to an AgentError (unknown errors keep their type name)."""
    import httpx
    import openai

    from configs.profiles import parser_for

    if isinstance(exc, AgentError):
        return exc
    if isinstance(exc, ConfigError):
        return AgentError(str(exc), EXIT_USAGE)
    if local := _local_storage(exc):
        return local
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
        return AgentError(TIMEOUT.format(base_url=base_url), EXIT_ENDPOINT)
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)) and _dropped(exc):
        return AgentError(DROPPED.format(base_url=base_url), EXIT_ENDPOINT)
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        return AgentError(UNREACHABLE.format(base_url=base_url), EXIT_ENDPOINT)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    if status == 401:
        return AgentError(UNAUTHORIZED.format(base_url=base_url), EXIT_ENDPOINT)
    if isinstance(exc, ModelNotFoundError):
        return AgentError(str(exc), EXIT_ENDPOINT)
    if isinstance(exc, openai.APIError):
        detail = _detail(exc)
        if status == 404:
            served = re.search(r"Valid aliases: (.*?)\.?$", detail)
            names = served.group(1) if served else "(unknown)"
            if HIDDEN_PATH in names:
                names = _listed_models(exc) or names
            return AgentError(MODEL_NOT_SERVED.format(model=model, base_url=base_url, served=names), EXIT_ENDPOINT)
        if status == 400:
            if no_tool_parser(exc):
                parser = parser_for(model or "") or "hermes"  # the model profile names its parser
                return AgentError(NO_TOOL_PARSER.format(base_url=base_url, parser=parser), EXIT_ENDPOINT)
            too_many = re.search(r"max_(?:completion_)?tokens=(\d+) cannot be greater than max_model_len=(\d+)", detail)
            if too_many:
                return AgentError(
                    MAX_TOKENS_TOO_BIG.format(asked=too_many.group(1), limit=too_many.group(2)), EXIT_ENDPOINT
                )
            if "maximum context length" in detail:
                limit = re.search(r"maximum context length is (\d+)", detail)
                info = f"max {limit.group(1)} tokens" if limit else detail.split(". ")[0]
                return AgentError(CONTEXT_TOO_LONG.format(detail=info), EXIT_ENDPOINT)
            return AgentError(BAD_REQUEST.format(detail=detail), EXIT_ENDPOINT)
        if status is not None and status >= 400 and status < 500:
            return AgentError(BAD_REQUEST.format(detail=f"HTTP {status}: {detail}"), EXIT_ENDPOINT)
        return AgentError(SERVER_FAILED.format(detail=detail.rstrip(".")), EXIT_FAILURE)
    return AgentError(f"{type(exc).__name__}: {exc}", EXIT_FAILURE)


def _listed_models(exc: BaseException) -> str | None:
    """The model ids GET /models lists on the server that answered `exc` (with the request's own key), or None.

    vLLM 0.33 passes every error message through `sanitize_message`, which writes file paths as "<path>": a
    model served by its folder (`vllm serve /srv/models/qwen`, no --served-model-name) is named "Valid
    aliases: <path>" in its 404, so the names are asked for instead (checked in tests/conformance/test_agent.py).
    """
    import httpx

    request = getattr(exc, "request", None)
    if not isinstance(request, httpx.Request) or not str(request.url).endswith("/chat/completions"):
        return None
    base = str(request.url).removesuffix("/chat/completions")
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    try:
        resp = httpx.get(f"{base}/models", headers=headers, timeout=LIST_MODELS_TIMEOUT)
        names = [str(card["id"]) for card in resp.raise_for_status().json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return ", ".join(names) or None


def _local_storage(exc: BaseException) -> AgentError | None:
    """Local file failures (the checkpoint file): a full disk, a place that cannot be written, a file that is not
    (or no longer) a SQLite database, or one that cannot be opened."""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return AgentError(DISK_FULL.format(detail=exc.strerror or "no space left"), EXIT_FAILURE)
    if isinstance(exc, OSError) and exc.errno in _DENIED_ERRNOS and exc.filename:
        return AgentError(CANNOT_WRITE_FILE.format(path=exc.filename, why=exc.strerror or exc), EXIT_USAGE)
    if not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:  # SQLITE_FULL (ENOSPC), SQLITE_IOERR (e.g. EFBIG)
        return AgentError(DISK_FULL.format(detail=text), EXIT_FAILURE)
    if "file is not a database" in text or "malformed" in text:
        return AgentError(CHECKPOINT_DAMAGED.format(detail=text), EXIT_USAGE)
    if "unable to open database file" in text:
        return AgentError(CHECKPOINT_UNOPENABLE.format(detail=text), EXIT_USAGE)
    return None
