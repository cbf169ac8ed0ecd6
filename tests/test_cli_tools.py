"""The CLI with MCP servers, your own tools and approval (#14): list-tools, run --approve, the repl prompt, batch."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from graph.demo.server import Reply, tool_call_text
from tests.conftest import ROOT, run_cli

PROMPT = "Run {name}? [y]es / [n]o / [e]dit / [a]lways (this conversation)"
NO_EDITOR = {"EDITOR": "", "VISUAL": ""}


# ----------------------------------------------------------------------------------------------- helpers


def notes_server(notes_dir: Path, *flags: str) -> dict[str, Any]:
    """An `mcpServers` entry for the test notes server; NOTES_DIR marks its process in /proc."""
    return {
        "command": sys.executable,
        "args": ["-m", "tests.mcp.notes_server", *flags],
        "cwd": str(ROOT),
        "env": {"NOTES_DIR": str(notes_dir)},
    }


def mcp_config(tmp: Path, **servers: dict[str, Any]) -> Path:
    path = tmp / "servers.json"
    path.write_text(json.dumps({"mcpServers": servers or {"notes": notes_server(tmp)}}), encoding="utf-8")
    return path


def note(tmp: Path, title: str) -> Path:
    return tmp / "notes" / f"{title}.txt"


def live_notes_servers(notes_dir: Path) -> list[int]:
    """Processes (not zombies) whose environment has NOTES_DIR=notes_dir: notes servers of this test."""
    marker = f"NOTES_DIR={notes_dir}".encode()
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue  # gone while we looked, or not ours
        if state != "Z" and marker in environ:
            found.append(int(pid))
    return found


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("work-agent: ")]


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in request["messages"] if m["role"] == "tool"]


MYTOOLS = '''"""Tools of the tests' own."""

from langchain_core.tools import tool


@tool(parse_docstring=True)
def count_words(text: str) -> int:
    """Count the words in a piece of text.

    Args:
        text: The text to count.
    """
    return len(text.split())


count_words.metadata = {"readOnlyHint": True}  # only reads: runs without asking


def shout(text: str) -> str:
    """Say the text in capitals.

    Args:
        text: What to say.
    """
    return text.upper()
'''


@pytest.fixture
def mytools(isolated_env: Path) -> str:
    (isolated_env / "mytools.py").write_text(MYTOOLS, encoding="utf-8")
    (isolated_env / "broken_tools.py").write_text("raise RuntimeError('boom at import')\n", encoding="utf-8")
    return "mytools"


# ----------------------------------------------------------------------------------------------- list-tools


def test_list_tools_shows_sources_policies_and_servers_then_stops_them(isolated_env, mytools):
    cfg = mcp_config(
        isolated_env,
        notes=notes_server(isolated_env),
        bad=notes_server(isolated_env / "bad", "--fail-start"),
        missing={"command": "no-such-mcp-server-binary"},
    )
    proc = run_cli("list-tools", "--json", "--mcp-config", str(cfg), "--tools-module", mytools)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    listing = json.loads(proc.stdout)
    tools = {t["name"]: t for t in listing["tools"]}
    assert {n: (t["source"], t["server"], t["policy"]) for n, t in tools.items() if n in {
        "get_current_time", "count_words", "shout", "read_note", "write_note", "delete_note"
    }} == {
        "get_current_time": ("built-in", None, "auto"),
        "count_words": ("module mytools", None, "auto"),  # readOnlyHint
        "shout": ("module mytools", None, "ask"),  # no hint
        "read_note": ("mcp notes", "notes", "auto"),  # readOnlyHint
        "write_note": ("mcp notes", "notes", "ask"),  # no hints
        "delete_note": ("mcp notes", "notes", "ask"),  # destructiveHint
    }  # fmt: skip
    assert tools["write_note"]["parameters"]["properties"].keys() == {"title", "text"}
    servers = {s["name"]: s for s in listing["servers"]}
    assert servers["notes"]["state"] == "ready" and "write_note" in servers["notes"]["tools"]
    assert servers["bad"]["state"] == servers["missing"]["state"] == "failed"
    assert "command not found: no-such-mcp-server-binary" in servers["missing"]["error"]
    # One warning line per failed server, on stderr; the notes server is stopped before the command exits.
    lines = warnings(proc.stderr)
    assert [line.split("'")[1] for line in lines] == ["bad", "missing"], proc.stderr
    assert all("is unavailable" in line for line in lines)
    assert live_notes_servers(isolated_env) == []

    text = run_cli("list-tools", "--mcp-config", str(cfg), "--tools-module", mytools, env={"COLUMNS": "100"})
    assert text.returncode == 0, text.stderr
    out = text.stdout.splitlines()
    assert out[out.index("write_note") + 1].strip() == "mcp notes · approval: ask"
    assert out[out.index("count_words") + 1].strip() == "module mytools · approval: auto"
    assert out[out.index("get_current_time") + 1].strip() == "built-in · approval: auto"
    servers_at = out.index("MCP servers")
    assert out[servers_at + 1].strip().startswith("notes: ready, ")
    assert any(line.strip().startswith("missing: unavailable: command not found") for line in out[servers_at:])
    assert live_notes_servers(isolated_env) == []


def test_list_tools_approval_entries_of_the_config_win(isolated_env):
    cfg = isolated_env / "servers.json"
    spec = {"mcpServers": {"notes": notes_server(isolated_env)}, "approval": {"write_note": "auto", "*_note": "deny"}}
    cfg.write_text(json.dumps(spec), encoding="utf-8")
    proc = run_cli("list-tools", "--json", "--mcp-config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    policies = {t["name"]: t["policy"] for t in json.loads(proc.stdout)["tools"]}
    assert (policies["write_note"], policies["read_note"], policies["delete_note"]) == ("auto", "deny", "deny")


@pytest.mark.parametrize("command", ["list-tools", "run", "batch"])
@pytest.mark.parametrize("problem", ["not json", "missing"])
def test_a_broken_mcp_config_is_one_line_and_exit_2(isolated_env, command, problem):
    cfg = isolated_env / "servers.json"
    if problem == "not json":
        cfg.write_text('{"mcpServers": {"notes": ', encoding="utf-8")
    args = {"list-tools": ["list-tools"], "run": ["run", "hi"], "batch": ["batch", "q.txt"]}[command]
    (isolated_env / "q.txt").write_text("hi\n", encoding="utf-8")
    proc = run_cli(*args, "--mcp-config", str(cfg), input="")
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: MCP config"), proc.stderr
    assert ("is not valid JSON" if problem == "not json" else "does not exist") in errors[0]
    assert not (isolated_env / "q.txt.answers.jsonl").exists()  # batch: refused before any row


def test_studio_checks_the_mcp_config_before_it_serves(isolated_env):
    cfg = isolated_env / "servers.json"
    cfg.write_text("[]", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_cli("studio", "--mcp-config", str(cfg), "--port", str(port), "--no-reload")
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and 'must be a JSON object with "mcpServers"' in errors[0]


# ----------------------------------------------------------------------------------------------- your own tools


def test_a_tools_module_tool_is_used_in_run_and_a_broken_one_is_one_warning(vllm, isolated_env, mytools):
    vllm.script(tool_call_text("count_words", {"text": "to be or not to be"}), "Six words.")
    proc = run_cli("run", "How many words?", "--tools-module", mytools, "--tools-module", "broken_tools", input="")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert "✓ count_words" in proc.stderr and "→ 6" in proc.stderr  # auto (readOnlyHint): no approval needed
    assert "Six words." in proc.stdout
    lines = warnings(proc.stderr)
    assert len(lines) == 1 and "tools module 'broken_tools' failed to load (RuntimeError: boom at import)" in lines[0]
    sent = {t["function"]["name"] for t in vllm.requests[0]["tools"]}
    assert {"count_words", "shout", "get_current_time"} <= sent
    assert tool_messages(vllm.requests[-1]) == ["6"]


def test_tools_modules_from_the_environment_and_the_option_add_up(isolated_env, mytools):
    (isolated_env / "more.py").write_text(
        '"""More."""\n\n\ndef ping() -> str:\n    """Answer pong."""\n    return "pong"\n', encoding="utf-8"
    )
    proc = run_cli("list-tools", "--json", "--tools-module", "more", env={"AGENT_TOOL_MODULES": mytools})
    assert proc.returncode == 0, proc.stderr
    sources = {t["name"]: t["source"] for t in json.loads(proc.stdout)["tools"]}
    assert sources["count_words"] == "module mytools" and sources["ping"] == "module more"


# ----------------------------------------------------------------------------------------------- run --approve


def test_run_approve_auto_runs_the_call_and_stops_the_server(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "周一开会"}), "Saved your note.")
    proc = run_cli("run", "Save a note: 周一开会", "--approve", "auto", "--mcp-config", str(cfg), input="")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "周一开会"
    assert "✓ write_note [notes] (approved)" in proc.stderr  # the trace names the server and the decision
    assert "Saved your note." in proc.stdout
    assert live_notes_servers(isolated_env) == []


@pytest.mark.parametrize("explicit", [True, False])
def test_run_without_a_terminal_denies_what_needs_asking_and_says_so(vllm, isolated_env, explicit):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "x"}), "I could not save it.")
    args = ["run", "Save a note", "--mcp-config", str(cfg), "--json", *(["--approve", "deny"] if explicit else [])]
    proc = run_cli(*args, input="")  # stdin and stdout are pipes: the default is deny
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert not note(isolated_env, "plan").exists()
    out = json.loads(proc.stdout)
    assert out["pending"] == [] and out["answer"] == "I could not save it."
    tool = next(s for s in out["steps"] if s["kind"] == "tool")
    assert (tool["name"], tool["decision"], tool["server"], tool["status"]) == (
        "write_note",
        "denied",
        "notes",
        "error",
    )
    lines = warnings(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "not run: write_note needs a person's approval" in lines[0]
    assert "--approve auto" in lines[0] and '"approval": {"write_note": "auto"}' in lines[0]
    assert ("--approve deny" in lines[0]) is explicit and ("no terminal" in lines[0]) is not explicit
    assert "needs approval" in tool_messages(vllm.requests[-1])[0]  # the model was told why
    assert live_notes_servers(isolated_env) == []


def test_run_deny_policy_is_not_reported_as_needing_approval(vllm, isolated_env):
    cfg = isolated_env / "servers.json"
    cfg.write_text(
        json.dumps({"mcpServers": {"notes": notes_server(isolated_env)}, "approval": {"delete_note": "deny"}})
    )
    vllm.script(tool_call_text("delete_note", {"title": "plan"}), "It is turned off.")
    proc = run_cli("run", "Delete my note", "--mcp-config", str(cfg), "--approve", "auto", input="")
    assert proc.returncode == 0, proc.stderr
    assert "✗ delete_note [notes] (denied)" in proc.stderr
    assert warnings(proc.stderr) == []  # its policy is deny: --approve auto would not help, so nothing to suggest


def test_run_approve_ask_needs_a_terminal(isolated_env):
    proc = run_cli("run", "hi", "--approve", "ask", "--json", input="")
    assert proc.returncode == 2
    no_traceback(proc)
    assert "--approve ask needs a terminal" in proc.stderr


def test_an_error_mid_turn_still_stops_the_servers(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("read_note", {"title": "plan"}), Reply(text="this reply breaks", error_after_tokens=2))
    proc = run_cli("run", "Read my note", "--mcp-config", str(cfg), input="")
    assert proc.returncode == 1, proc.stderr
    no_traceback(proc)
    assert "✓ read_note [notes]" in proc.stderr and "model server failed while answering" in proc.stderr
    assert live_notes_servers(isolated_env) == []


# ----------------------------------------------------------------------------------------------- run in a terminal


class Terminal:
    """`python -m graph.cli ARGS` with a pseudo-terminal as stdin, stdout and stderr."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8", "TERM": "dumb", **NO_EDITOR}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "graph.cli", *args], stdin=slave, stdout=slave, stderr=slave, env=env
        )
        os.close(slave)
        self.master, self.output = master, ""

    def expect(self, text: str, timeout: float = 60) -> None:
        """Read until `text` appeared (or the process ended: then fail with what it printed)."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not appear in:\n{self.output}"
            if not self._read(left):
                raise AssertionError(f"the command ended before {text!r}:\n{self.output}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave end is closed, the command ended
            return False
        self.output += data.decode("utf-8", "replace")
        return bool(data)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self._read(max(deadline - time.monotonic(), 0.01)) and time.monotonic() < deadline:
            pass
        code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        os.close(self.master)
        return code


def test_run_in_a_terminal_asks_by_default(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "周一开会"}), "Saved it.")
    term = Terminal("run", "Save a note", "--mcp-config", str(cfg))
    term.expect(PROMPT.format(name="write_note"))
    assert "write_note · MCP server notes wants to run with:" in term.output
    assert '{"title": "plan", "text": "周一开会"}' in term.output  # the arguments as JSON, Chinese as it is
    assert not note(isolated_env, "plan").exists()  # nothing runs before the answer
    term.send("y\n")
    assert term.wait() == 0, term.output
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "周一开会"
    assert "write_note [notes] (approved)" in term.output and "Saved it." in term.output
    assert live_notes_servers(isolated_env) == []


def test_ctrl_c_at_the_prompt_leaves_the_call_waiting_and_stops_the_servers(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "x"}), "Saved it.")
    term = Terminal("run", "Save a note", "--mcp-config", str(cfg), "--thread", "t-ctrl-c", "--json")
    term.expect(PROMPT.format(name="write_note"))
    term.proc.send_signal(signal.SIGINT)
    assert term.wait() == 130, term.output
    [printed] = [line for line in term.output.splitlines() if line.startswith('{"answer"')]
    pending = json.loads(printed)["pending"]
    assert [(p["name"], p["server"], p["args"]) for p in pending] == [
        ("write_note", "notes", {"title": "plan", "text": "x"})
    ]
    assert "1 tool call left waiting for approval on thread t-ctrl-c" in term.output
    assert "repl --thread t-ctrl-c" in term.output and "Traceback" not in term.output
    assert not note(isolated_env, "plan").exists()
    assert live_notes_servers(isolated_env) == []
    # The pause is in the checkpoint: the repl on that thread asks again.
    proc = run_cli("repl", "--thread", "t-ctrl-c", "--mcp-config", str(cfg), input="y\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert "waiting for approval" in proc.stderr and PROMPT.format(name="write_note") in proc.stderr
    assert note(isolated_env, "plan").exists(), proc.stderr
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "x"
    assert "Saved it." in proc.stdout


# ----------------------------------------------------------------------------------------------- the repl prompt


def repl(cfg: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("repl", "--mcp-config", str(cfg), *args, input=stdin, env=NO_EDITOR)


def test_repl_yes_runs_the_call_after_a_bad_answer(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "hello"}), "Saved.")
    proc = repl(cfg, "Save a note\nmaybe\ny\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert proc.stderr.count(PROMPT.format(name="write_note")) == 2  # asked again after "maybe"
    assert "Answer y (run it), n (do not run it)" in proc.stderr
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "hello"
    assert "✓ write_note [notes] (approved)" in proc.stderr and "Saved." in proc.stdout
    assert live_notes_servers(isolated_env) == []


def test_repl_no_with_a_reason_tells_the_model(vllm, isolated_env):
    (isolated_env / "notes").mkdir()
    note(isolated_env, "plan").write_text("keep me", encoding="utf-8")
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("delete_note", {"title": "plan"}), "OK, I left it.")
    proc = repl(cfg, "Delete my note\nn\n我还需要它 (still need it)\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert "marked destructive" in proc.stderr
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "keep me"
    assert "delete_note [notes] (rejected)" in proc.stderr and "OK, I left it." in proc.stdout
    [message] = tool_messages(vllm.requests[-1])
    assert "rejected" in message and "我还需要它 (still need it)" in message


def test_repl_edit_runs_the_edited_arguments(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "draft"}), "Saved the edited note.")
    edited = json.dumps({"title": "plan", "text": "改过的 final"}, ensure_ascii=False)
    proc = repl(cfg, f"Save a note\ne\nnot json\ne\n{edited}\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert "Not valid JSON" in proc.stderr  # a bad edit changes nothing and asks again
    assert note(isolated_env, "plan").read_text(encoding="utf-8") == "改过的 final"
    assert f"write_note [notes] (edited) {edited}" in proc.stderr  # the trace has the arguments that ran


def test_repl_always_stops_asking_about_that_tool_in_the_conversation(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(
        tool_call_text("write_note", {"title": "a", "text": "1"}),
        "Saved a.",
        tool_call_text("write_note", {"title": "b", "text": "2"}),
        "Saved b.",
        tool_call_text("write_note", {"title": "c", "text": "3"}),
        "Saved c.",
    )
    proc = repl(cfg, "Save a\na\nSave b\n/new\nSave c\ny\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert [note(isolated_env, t).read_text(encoding="utf-8") for t in "abc"] == ["1", "2", "3"]
    # Asked for a, not for b (same conversation), asked again for c (a new conversation).
    assert proc.stderr.count(PROMPT.format(name="write_note")) == 2
    assert "write_note [notes] (allowed)" in proc.stderr


def test_repl_eof_at_the_prompt_leaves_the_call_for_approve(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    vllm.script(tool_call_text("write_note", {"title": "plan", "text": "x"}), "Saved.")
    first = repl(cfg, "Save a note\n", "--thread", "t-eof")
    assert first.returncode == 0, first.stderr
    assert "1 tool call left waiting: /approve to decide" in first.stderr
    assert not note(isolated_env, "plan").exists()
    assert live_notes_servers(isolated_env) == []
    second = repl(cfg, "n\n\n/approve\n/exit\n", "--thread", "t-eof")  # reopened: asks; then nothing waits
    assert second.returncode == 0, second.stderr
    assert "This conversation has tool calls waiting for approval" in second.stderr
    assert "Nothing is waiting for approval." in second.stderr
    assert not note(isolated_env, "plan").exists()


def test_repl_tools_lists_the_mcp_tools_with_their_policies(isolated_env, vllm):
    cfg = mcp_config(isolated_env)
    proc = repl(cfg, "/tools\n/exit\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.replace("you> ", "").splitlines()
    assert out[out.index("delete_note") + 1].strip() == "mcp notes · approval: ask"
    assert live_notes_servers(isolated_env) == []


# ----------------------------------------------------------------------------------------------- batch


def test_batch_denies_what_needs_asking_unless_allowed(vllm, isolated_env):
    cfg = mcp_config(isolated_env)
    questions = isolated_env / "q.jsonl"
    questions.write_text('{"id": "w", "question": "save w"}\n{"id": "r", "question": "read r"}\n', encoding="utf-8")

    def script() -> None:
        vllm.script_for("save w", tool_call_text("write_note", {"title": "w", "text": "from batch"}), "Done w.")
        vllm.script_for("read r", tool_call_text("read_note", {"title": "r"}), "Done r.")

    script()
    proc = run_cli("batch", str(questions), "-o", "denied.jsonl", "--mcp-config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    rows = {r["id"]: r for r in map(json.loads, (isolated_env / "denied.jsonl").read_text().splitlines())}
    assert (rows["w"]["denied_calls"], rows["r"]["denied_calls"]) == (["write_note"], [])
    assert rows["w"]["status"] == "ok" and not note(isolated_env, "w").exists()
    assert "denied tool calls" in proc.stdout and "write_note 1" in proc.stdout
    [line] = warnings(proc.stderr)
    assert "1 tool call needed a person's approval" in line and "--allow write_note" in line
    assert live_notes_servers(isolated_env) == []

    report = run_cli("report", "denied.jsonl")
    assert report.returncode == 0 and "write_note 1" in report.stdout

    script()
    proc = run_cli("batch", str(questions), "-o", "allowed.jsonl", "--mcp-config", str(cfg), "--allow", "write_*")
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in map(json.loads, (isolated_env / "allowed.jsonl").read_text().splitlines())}
    assert (rows["w"]["denied_calls"], rows["r"]["denied_calls"]) == ([], [])
    assert note(isolated_env, "w").read_text(encoding="utf-8") == "from batch"
    assert warnings(proc.stderr) == []
    assert live_notes_servers(isolated_env) == []


def test_batch_reports_a_failed_server_once_and_answers_with_the_other_tools(vllm, isolated_env):
    cfg = mcp_config(isolated_env, bad=notes_server(isolated_env, "--fail-start"))
    questions = isolated_env / "q.txt"
    questions.write_text("What time is it in Tokyo?\n北京现在几点？\n", encoding="utf-8")
    proc = run_cli("batch", str(questions), "--mcp-config", str(cfg), "-c", "2")
    assert proc.returncode == 0, proc.stderr
    lines = warnings(proc.stderr)
    assert len(lines) == 1 and "MCP server 'bad' is unavailable" in lines[0]
    rows = [json.loads(line) for line in (isolated_env / "q.txt.answers.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["denied_calls"] == [] for r in rows)


def test_the_resume_hint_keeps_the_tool_options():
    from types import SimpleNamespace

    from graph.cli.batch import _resume_command

    params = {
        "input_path": "q.jsonl",
        "approve": "auto",
        "allow": ("write_*", "delete_note"),
        "mcp_config": Path("servers.json"),
        "tools_modules": ("mytools",),
    }
    hint = _resume_command(SimpleNamespace(params=params), Path("out.jsonl"))  # type: ignore[arg-type]
    assert hint.endswith(
        "batch q.jsonl -o out.jsonl --resume --mcp-config servers.json --approve auto "
        "--allow 'write_*' --allow delete_note --tools-module mytools"
    )
