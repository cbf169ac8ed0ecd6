"""MCP tool servers for real: the notes server over stdio and streamable HTTP, mcp-server-git and mcp-server-time.

Every server is a real process speaking MCP; the model is the scripted vLLM server. The turns go through the
graph (`build_graph(toolbox=Toolbox(TOOLS, hub=McpHub(config)))`), so what is checked is what every interface
gets: the tool step names its server, servers start lazily and once, and `aclose()` leaves no process.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from configs.settings import get_settings
from graph.checkpoint import open_checkpointer
from graph.context import Context
from graph.demo.server import tool_call_text
from graph.graph import build_graph
from graph.obs.logs import Redactor, setup_logging
from graph.runner import run_turn
from tests.mcp.helpers import cmdline_of, http_notes_server, notes_spec, server_pids, write_note
from tools import TOOLS
from tools.mcp import McpConfig, McpHub, load_config
from tools.toolbox import Toolbox

SECRET = "s3cr3t-mcp-token-7f2a9c"
START_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def mcp_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's stdio servers write their stderr under its tmp_path, not the user's ~/.local/state."""
    logs = tmp_path / "mcp-logs"
    monkeypatch.setattr("tools.mcp.LOG_DIR", logs)
    return logs


@pytest.fixture
async def boxes() -> AsyncIterator[list[Toolbox]]:
    """Toolboxes the test made; their servers are stopped at the end even when the test fails."""
    made: list[Toolbox] = []
    yield made
    for box in made:
        await box.aclose()


@pytest.fixture
async def saver() -> AsyncIterator[object]:
    async with open_checkpointer(get_settings()) as checkpointer:
        yield checkpointer


def toolbox(boxes: list[Toolbox], servers: dict, *, start_timeout: float = START_TIMEOUT, **config: object) -> Toolbox:
    hub = McpHub(McpConfig.model_validate({"mcpServers": servers, **config}), start_timeout=start_timeout)
    box = Toolbox(TOOLS, hub=hub)
    boxes.append(box)
    return box


def graph_of(box: Toolbox, saver: object):
    return build_graph(settings=get_settings(), toolbox=box, checkpointer=saver)


def tool_steps(result):
    return [s for s in result.steps if s.kind == "tool"]


def offered(request: dict) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def text_of(content: object) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


# ------------------------------------------------------------------------------------ the notes server


async def test_a_stdio_server_tool_is_used_in_a_turn_and_its_step_names_the_server(vllm, boxes, saver, tmp_path):
    notes = tmp_path / "notes-a"
    write_note(notes, "shopping", "milk, eggs, 豆腐")
    box = toolbox(boxes, {"notes": notes_spec("notes-stdio-turn", notes)})
    graph = graph_of(box, saver)
    vllm.script(tool_call_text("read_note", {"title": "shopping"}), "You need milk, eggs and 豆腐.")

    result = await run_turn(graph, "What is on my shopping list?", thread_id="t1", context=Context())

    (step,) = tool_steps(result)
    assert (step.name, step.server, step.status, step.decision) == ("read_note", "notes", "ok", None)
    assert step.result == "milk, eggs, 豆腐"
    assert result.answer == "You need milk, eggs and 豆腐." and result.pending is None
    names = offered(vllm.requests[0])
    assert names[:3] == [t.name for t in TOOLS]  # built-in tools first, then the server's
    assert {"read_note", "write_note", "delete_note"} <= set(names[3:])
    assert box.statuses()[0].state == "ready" and box.problems() == []


async def test_a_streamable_http_server_tool_is_used_in_a_turn(vllm, boxes, saver, tmp_path):
    notes = tmp_path / "notes-http"
    write_note(notes, "todo", "call the plumber")
    with http_notes_server(notes, name="notes-http") as url:
        box = toolbox(boxes, {"remote": {"url": url}})
        graph = graph_of(box, saver)
        vllm.script(tool_call_text("read_note", {"title": "todo"}), "Call the plumber.")

        result = await run_turn(graph, "What is on my todo note?", thread_id="t1", context=Context())

        (step,) = tool_steps(result)
        assert (step.name, step.server, step.status) == ("read_note", "remote", "ok")
        assert step.result == "call the plumber"
        (status,) = box.statuses()
        assert (status.state, status.transport) == ("ready", "http")
        await box.aclose()
    assert result.answer == "Call the plumber."


async def test_servers_start_lazily_once_for_every_turn_and_aclose_ends_them(vllm, boxes, saver, tmp_path):
    notes = tmp_path / "notes-life"
    write_note(notes, "n", "kept")
    marker = "notes-lifecycle"
    box = toolbox(boxes, {"notes": notes_spec(marker, notes)})
    graph = graph_of(box, saver)
    assert server_pids(marker) == []  # building the toolbox and the graph starts nothing
    assert [t.name for t in box.known()] == [t.name for t in TOOLS]

    pids = []
    for turn in range(3):
        vllm.script(tool_call_text("read_note", {"title": "n"}), f"It says kept ({turn}).")
        result = await run_turn(graph, f"Read note n ({turn})", thread_id="t1", context=Context())
        assert tool_steps(result)[0].result == "kept"
        pids.append(server_pids(marker))
    assert len(pids[0]) == 1 and pids == [pids[0]] * 3, pids  # one process, the same for every turn

    await box.aclose()
    assert server_pids(marker) == []  # the process is gone (and reaped) when aclose returns


async def test_the_first_tools_call_starts_the_server(boxes, tmp_path):
    marker = "notes-first-call"
    box = toolbox(boxes, {"notes": notes_spec(marker, tmp_path)})
    assert server_pids(marker) == []
    tools = await box.tools()
    assert "read_note" in [t.name for t in tools] and len(server_pids(marker)) == 1
    assert (box.info("read_note")["server"], box.info("read_note")["source"]) == ("notes", "mcp")
    await box.tools()
    assert len(server_pids(marker)) == 1  # not a second process


# --------------------------------------------------------------------------------- ${VAR} and secrets


def child_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [part.decode().split("=", 1) for part in raw.split(b"\0") if b"=" in part]
    return {k: v for k, v in pairs}


async def test_variables_are_expanded_in_env_and_args(boxes, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_TEST_TOKEN", SECRET)
    monkeypatch.setenv("MCP_NAME_SUFFIX", "x1")
    monkeypatch.delenv("MCP_REGION", raising=False)
    spec = notes_spec(
        "notes-${MCP_NAME_SUFFIX}",
        tmp_path,
        env={"TOKEN": "${MCP_TEST_TOKEN}", "REGION": "${MCP_REGION:-eu-west}", "PLAIN": "literal"},
    )
    box = toolbox(boxes, {"notes": spec})
    tools = {t.name: t for t in await box.tools()}

    (pid,) = server_pids("notes-x1")  # the argument was expanded
    assert "notes-x1" in cmdline_of(pid) and "notes-${MCP_NAME_SUFFIX}" not in cmdline_of(pid)
    env = child_environ(pid)
    assert (env["TOKEN"], env["REGION"], env["PLAIN"]) == (SECRET, "eu-west", "literal")
    region = await tools["echo_env"].ainvoke({"name": "REGION"})
    assert text_of(region) == "eu-west"  # a default written in the config file is not a secret


async def test_variables_are_expanded_in_http_headers(boxes, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_TEST_TOKEN", SECRET)
    monkeypatch.delenv("MCP_TENANT", raising=False)
    with http_notes_server(tmp_path / "h", name="notes-headers") as url:
        box = toolbox(
            boxes,
            {"remote": {"url": url, "headers": {"X-Tenant": "${MCP_TENANT:-acme}", "X-Api-Key": "${MCP_TEST_TOKEN}"}}},
        )
        tools = {t.name: t for t in await box.tools()}
        assert text_of(await tools["echo_header"].ainvoke({"name": "x-tenant"})) == "acme"
        # The server got the real key; what it answers is redacted before the model or the trace sees it.
        got = text_of(await tools["echo_header"].ainvoke({"name": "x-api-key"}))
        assert got == "[redacted]" and SECRET not in got
        await box.aclose()


async def test_a_missing_variable_is_one_line_naming_the_server_and_the_variable(boxes, tmp_path, monkeypatch):
    monkeypatch.delenv("MCP_NOT_SET_ANYWHERE", raising=False)
    box = toolbox(
        boxes,
        {
            "github": notes_spec("notes-missing-var", tmp_path, env={"GITHUB_TOKEN": "${MCP_NOT_SET_ANYWHERE}"}),
            "notes": notes_spec("notes-beside-missing", tmp_path),
        },
    )
    tools = [t.name for t in await box.tools()]
    (line,) = box.problems()
    assert "\n" not in line and "'github'" in line and "${MCP_NOT_SET_ANYWHERE}" in line and "set it" in line
    assert "Traceback" not in line
    assert "read_note" in tools  # the other server works
    assert server_pids("notes-missing-var") == []  # never started without its variable


async def test_the_secret_never_reaches_logs_errors_or_the_trace(vllm, boxes, saver, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_TEST_TOKEN", SECRET)
    monkeypatch.setenv("AGENT_LOG_LEVEL", "DEBUG")
    get_settings.cache_clear()
    logs = io.StringIO()
    handler = setup_logging(get_settings(), stream=logs)
    try:
        box = toolbox(
            boxes,
            {
                "keyed": notes_spec("notes-keyed", tmp_path, env={"NOTES_TOKEN": "${MCP_TEST_TOKEN}"}),
                "refused": notes_spec(
                    "notes-refused", tmp_path, "--reject-token", env={"NOTES_TOKEN": "${MCP_TEST_TOKEN}"}
                ),
            },
        )
        graph = graph_of(box, saver)
        vllm.script(tool_call_text("echo_env", {"name": "NOTES_TOKEN"}), "I cannot show the token.")
        result = await run_turn(graph, "What is the notes token?", thread_id="t1", context=Context())
        logging.getLogger("test").warning("the server said %s", SECRET)
    finally:
        logging.getLogger().removeHandler(handler)

    # the server that refused the token said it on stderr: the one line keeps the words, not the value
    (line,) = box.problems()
    assert "'refused'" in line and "the token [redacted] was refused (401)" in line
    assert SECRET not in line and all(SECRET not in (s.error or "") for s in box.statuses())
    (step,) = tool_steps(result)
    assert step.server == "keyed" and step.status == "ok"
    assert SECRET not in step.model_dump_json() and step.result == "[redacted]"
    tool_message = next(
        m
        for m in (await graph.aget_state({"configurable": {"thread_id": "t1"}})).values["messages"]
        if m.type == "tool"
    )
    assert SECRET not in text_of(tool_message.content)  # nor what the model read
    assert all(SECRET not in str(body) for body in vllm.requests)
    text = logs.getvalue()
    assert "echo_env" in text and "the server said ***" in text and SECRET not in text
    assert Redactor([]).redact(f"token={SECRET}") == "token=***"


# ---------------------------------------------------------------------------------- names and config


async def test_two_servers_with_the_same_tools_are_namespaced_by_server(vllm, boxes, saver, tmp_path):
    write_note(tmp_path / "a", "n", "from alpha")
    write_note(tmp_path / "b", "n", "from beta")
    box = toolbox(
        boxes, {"alpha": notes_spec("notes-alpha", tmp_path / "a"), "beta": notes_spec("notes-beta", tmp_path / "b")}
    )
    graph = graph_of(box, saver)
    vllm.script(tool_call_text("beta_read_note", {"title": "n"}), "Beta says: from beta.")

    result = await run_turn(graph, "Read note n on beta", thread_id="t1", context=Context())

    names = offered(vllm.requests[0])
    assert {"alpha_read_note", "beta_read_note", "alpha_delete_note", "beta_delete_note"} <= set(names)
    assert "read_note" not in names and len(names) == len(set(names))
    (step,) = tool_steps(result)
    assert (step.name, step.server, step.result) == ("beta_read_note", "beta", "from beta")
    assert box.info("alpha_read_note")["mcp_name"] == "read_note"
    assert box.policy("alpha_read_note") == "auto" and box.policy("beta_delete_note") == "ask"


async def test_a_disabled_server_is_never_started(boxes, tmp_path):
    box = toolbox(
        boxes,
        {
            "off": notes_spec("notes-disabled", tmp_path, disabled=True),
            "on": notes_spec("notes-enabled", tmp_path),
        },
    )
    tools = await box.tools()
    assert server_pids("notes-disabled") == [] and len(server_pids("notes-enabled")) == 1
    assert all(box.info(t.name).get("server") != "off" for t in tools)
    assert [(s.name, s.state) for s in box.statuses()] == [("off", "disabled"), ("on", "ready")]
    assert box.problems() == []


def test_the_config_file_is_the_ecosystem_format(tmp_path):
    path = tmp_path / "mcp.json"
    path.write_text(
        '{"mcpServers": {"fs": {"command": "npx", "args": ["-y", "x"], "env": {"A": "b"}},'
        ' "web": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer t"}},'
        ' "vsc": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}, "approval": {"fs_*": "deny"},'
        ' "otherClientKey": 1}',
        encoding="utf-8",
    )
    config = load_config(path, required=True)
    assert [(n, s.kind) for n, s in config.servers.items()] == [("fs", "stdio"), ("web", "http"), ("vsc", "sse")]
    assert config.approval == {"fs_*": "deny"} and config.path == path
    assert load_config(tmp_path / "absent.json", required=False).servers == {}


# ------------------------------------------------------------------------------ published MCP servers


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=Test"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "README.md").write_text("hello\n", encoding="utf-8")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    (repo / "new.txt").write_text("new file\n", encoding="utf-8")
    return repo


def git_spec(repo: Path) -> dict:
    return {"command": sys.executable, "args": ["-m", "mcp_server_git", "--repository", str(repo)]}


async def test_mcp_server_git_hints_give_the_policies(boxes, git_repo):
    box = toolbox(boxes, {"git": git_spec(git_repo)})
    await box.tools()
    hints = {
        name: (box.info(name).get("readOnlyHint"), box.info(name).get("destructiveHint"))
        for name in ("git_status", "git_log", "git_add", "git_commit", "git_reset")
    }
    assert hints == {  # what mcp-server-git declares
        "git_status": (True, False),
        "git_log": (True, False),
        "git_add": (False, False),
        "git_commit": (False, False),
        "git_reset": (False, True),
    }
    policies = {name: box.policy(name) for name in hints}
    assert policies == {
        "git_status": "auto",
        "git_log": "auto",
        "git_add": "ask",
        "git_commit": "ask",
        "git_reset": "ask",
    }
    rows = {r.name: r for r in box.listing()}
    assert rows["git_reset"].source == "mcp git" and rows["git_reset"].server == "git"


async def test_mcp_server_git_status_runs_and_git_add_waits_for_approval(vllm, boxes, saver, git_repo):
    box = toolbox(boxes, {"git": git_spec(git_repo)})
    graph = graph_of(box, saver)
    vllm.script(tool_call_text("git_status", {"repo_path": str(git_repo)}), "new.txt is untracked.")
    result = await run_turn(graph, "What is the git status?", thread_id="g1", context=Context())
    (status,) = tool_steps(result)
    assert (status.server, status.status, status.decision) == ("git", "ok", None)
    assert "new.txt" in status.result and "main" in status.result

    vllm.script(tool_call_text("git_add", {"repo_path": str(git_repo), "files": ["new.txt"]}), "Staged new.txt.")
    paused = await run_turn(graph, "Stage new.txt", thread_id="g1", context=Context())
    assert paused.pending is not None and paused.answer == ""
    (call,) = paused.pending.calls
    assert (call.name, call.server) == ("git_add", "git") and "from MCP server 'git'" in call.description
    staged = ["git", "-C", str(git_repo), "diff", "--cached", "--name-only"]
    assert subprocess.run(staged, capture_output=True, text=True, check=True).stdout == ""  # not run yet

    done = await run_turn(graph, None, thread_id="g1", context=Context(), resume={"decisions": [{"type": "approve"}]})
    (add,) = tool_steps(done)
    assert (add.name, add.decision, add.status) == ("git_add", "approved", "ok")
    assert subprocess.run(staged, capture_output=True, text=True, check=True).stdout.split() == ["new.txt"]
    assert done.answer == "Staged new.txt."


async def test_mcp_server_time_is_used_in_a_turn_beside_the_builtin_clock(vllm, boxes, saver):
    box = toolbox(
        boxes, {"time": {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}}
    )
    graph = graph_of(box, saver)
    # its get_current_time has the built-in tool's name, so it is offered under its server's prefix
    vllm.script(tool_call_text("time_get_current_time", {"timezone": "Asia/Tokyo"}), "It is evening in Tokyo.")

    result = await run_turn(graph, "What time is it in Tokyo (MCP)?", thread_id="t1", context=Context())

    names = offered(vllm.requests[0])
    assert names.count("get_current_time") == 1 and "time_get_current_time" in names
    (step,) = tool_steps(result)
    assert (step.name, step.server, step.status) == ("time_get_current_time", "time", "ok")
    assert '"timezone": "Asia/Tokyo"' in step.result and "datetime" in step.result
    assert box.policy("time_get_current_time") == "auto"  # readOnlyHint


def test_what_is_registered_as_a_secret_and_what_is_not(monkeypatch):
    from configs.secrets import extra_secrets
    from tools.mcp import ServerSpec, connection

    values = {
        "MCP_T_TOKEN": "tok-1f9e0c7a",  # a token, whatever the variable's name
        "MCP_T_REGION": "region-8c1d2e",  # from the environment: could be a token, so kept secret
        "MCP_T_KEYARG": "argkey-5b7f9d",
        "HOME": "/home/mcp-test-user",  # PATH, HOME...: never secrets
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    stdio = ServerSpec(
        command="server",
        args=["--root", "${HOME}/notes", "--api-key", "${MCP_T_KEYARG}", "--password", "literal-pw-31e8", "--v"],
        env={
            "A": "${MCP_T_TOKEN}",
            "REGION": "${MCP_T_REGION}",
            "PATH": "${PATH}",
            "GITHUB_TOKEN": "ghp-literal-77a1",
            "LEVEL": "${MCP_T_LEVEL:-debug-level-x}",
        },
    )
    conn = connection("s", stdio)
    assert conn["args"] == [
        "--root",
        "/home/mcp-test-user/notes",
        "--api-key",
        "argkey-5b7f9d",
        "--password",
        "literal-pw-31e8",
        "--v",
    ]
    http = ServerSpec(
        url="http://127.0.0.1:1/mcp?api_key=${MCP_T_TOKEN}",
        headers={"Authorization": "Bearer literal-bearer-9f3c", "X-Client": "work-agent-client-x"},
    )
    assert connection("h", http)["url"] == "http://127.0.0.1:1/mcp?api_key=tok-1f9e0c7a"
    secrets = set(extra_secrets())
    for secret in (
        "tok-1f9e0c7a",
        "region-8c1d2e",
        "argkey-5b7f9d",
        "literal-pw-31e8",
        "ghp-literal-77a1",
        "literal-bearer-9f3c",
    ):
        assert secret in secrets, secret
    plain_values = ("/home/mcp-test-user", "/home/mcp-test-user/notes", "debug-level-x", "work-agent-client-x")
    for plain in (*plain_values, os.environ["PATH"]):
        assert plain not in secrets, plain  # masking these would hide paths and words in every log line
