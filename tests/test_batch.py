"""`batch` and `report` through the real CLI (subprocesses) against the fake vLLM server."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from configs.settings import load_settings
from graph.batch.inputs import Question
from graph.batch.outputs import RowWriter
from graph.batch.run import BatchConfig, Progress, run_batch
from graph.demo.server import Reply, tool_call_text
from tests.conftest import ROOT, run_cli

CJK = range(0x4E00, 0xA000)


def rows_by_id(path: Path) -> dict[Any, dict[str, Any]]:
    """The output's rows by id, checking that no id appears twice."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), f"duplicate rows: {sorted(map(str, ids))}"
    return {row["id"]: row for row in rows}


def complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def poll(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def start_batch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "graph.cli", "batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
    )


def asked(vllm, text: str) -> int:
    """Chat requests received whose latest user message contains `text`."""
    users = ([m for m in r["messages"] if m["role"] == "user"] for r in list(vllm.requests))
    return sum(1 for u in users if u and text in str(u[-1]["content"]))


def no_traceback(proc: Any) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_jsonl_good_failing_and_malformed_rows_then_report(vllm, tmp_path):
    vllm.script_for("boom", Reply(status=500))
    vllm.script_for("drop the line", Reply(drop=True))
    vllm.script_for("slow question", Reply(hang=True))
    loop = tool_call_text("calculate", {"expression": "1 + 1"})
    vllm.script_for("loop the tools", loop, loop)
    lines = [
        {"id": "time", "question": "What time is it in Tokyo?", "topic": "clock"},
        {"id": "calc", "question": "What is 2^10 * 3?", "answer": 3072},
        {"id": "zh", "question": "北京现在几点？"},
        {"id": "boom", "question": "Please boom now"},
        {"id": "drop", "question": "drop the line"},
        {"id": "slow", "question": "slow question"},
        {"id": "loop", "question": "loop the tools"},
        "{broken json",
        {"id": "noq", "note": "forgot the question"},
        "",
        {"question": "hi there"},
    ]
    source = tmp_path / "questions.jsonl"
    source.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n",
        encoding="utf-8",
    )
    proc = run_cli("batch", str(source), "--concurrency", "4", "--timeout", "4", "--max-steps", "2")
    assert proc.returncode == 1, proc.stderr
    no_traceback(proc)
    rows = rows_by_id(tmp_path / "questions.jsonl.answers.jsonl")  # the default output name
    assert set(rows) == {"time", "calc", "zh", "boom", "drop", "slow", "loop", 8, "noq", 10, 11}

    ok = {i for i, r in rows.items() if r["status"] == "ok"}
    assert ok == {"time", "calc", "zh", 11}, {i: r["error"] for i, r in rows.items()}
    assert "Asia/Tokyo" in rows["time"]["answer"] and rows["time"]["topic"] == "clock" and rows["time"]["line"] == 1
    assert [s["kind"] for s in rows["time"]["steps"]] == ["model", "tool", "model"]
    assert rows["time"]["usage"]["total_tokens"] > 0 and rows["time"]["latency_ms"] > 0 and rows["time"]["retries"] == 0
    endpoint = vllm.base_url.split("//")[1].split("/")[0]  # host:port, as the trace names it
    run = {
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "endpoints": [endpoint],
        "concurrency": 4,
        "max_steps": 2,
        "timeout": 4.0,
    }
    assert all({k: r["run"][k] for k in run} == run for r in rows.values())  # bad rows too
    assert len({r["run"]["started_at"] for r in rows.values()}) == 1 and rows["time"]["tool_errors"] == 0
    assert "3072" in rows["calc"]["answer"] and rows["calc"]["input_answer"] == 3072  # a clashing field is kept
    assert rows["zh"]["question"] == "北京现在几点？" and any(ord(c) in CJK for c in rows["zh"]["answer"])
    assert rows[11]["line"] == 11 and rows[11]["error"] is None

    assert rows["boom"]["error"].startswith("The model server failed while answering")
    assert rows["boom"]["answer"] is None
    assert rows["drop"]["error"].startswith(f"The model server at {vllm.base_url} closed the connection")
    assert rows["slow"]["error"].startswith("Timed out after 4s (--timeout)")
    assert rows["loop"]["stopped"] == "max_steps" and rows["loop"]["answer"]
    assert rows["loop"]["error"].startswith("Stopped early: used all 2 tool steps")
    assert rows[8]["error"].startswith("line 8: invalid JSON (") and rows[8]["question"] is None
    assert rows["noq"]["error"] == 'line 9: no "question" field' and rows["noq"]["note"] == "forgot the question"
    assert rows[10]["error"] == "line 10: empty line (expected a JSON object)"
    assert "line 8: invalid JSON" in proc.stderr and "(recorded as a failed row)" in proc.stderr
    assert all("\n" not in r["error"] for r in rows.values() if r["error"])  # one line each
    assert "Batch summary" in proc.stdout and "4 (36%)" in proc.stdout and "7 (64%)" in proc.stdout
    poll(lambda: vllm.disconnects >= 1, "the timed-out request to be closed")

    html = tmp_path / "report.html"
    report = run_cli("report", str(tmp_path / "questions.jsonl.answers.jsonl"), "--html", str(html))
    assert report.returncode == 0, report.stderr
    assert "questions" in report.stdout and "11" in report.stdout and "get_current_time" in report.stdout
    assert "calculate" in report.stdout and "recovered text tool calls" in report.stdout
    assert "stopped early" in report.stdout and "max steps 1" in report.stdout
    assert "Qwen/Qwen2.5-7B-Instruct" in report.stdout and endpoint in report.stdout  # the run's settings
    page = html.read_text(encoding="utf-8")
    assert "<svg" in page and "get_current_time" in page and "<h2>Errors</h2>" in page
    assert "Qwen/Qwen2.5-7B-Instruct" in page and endpoint in page and 'type="search"' in page
    assert "北京现在几点？" in page and rows["zh"]["answer"].splitlines()[0] in page
    assert "Timed out after 4s (--timeout)" in page and page.count('<tr class="error"') == 7


def test_csv_from_stdin_bom_chinese_retried_503_and_rows_keyed_by_id_not_order(vllm, tmp_path):
    vllm.config.token_delay = 0.003
    vllm.script_for("slowpoke", Reply(text="Let me think about that slowly. " * 40))
    vllm.script_for("retry me", Reply(status=503))
    csv_text = (
        'id,question,lang\r\nr1,slowpoke: say something,en\r\nr2,"What is 2 + 3, exactly?",en\r\n'
        "r3,retry me: what is 7 * 6?,en\r\n\r\nr5,计算 12 * 12,zh\r\n,hi,en\r\n"
    )
    proc = run_cli(
        "batch", "-", "--format", "csv", "--concurrency", "8", input="\ufeff" + csv_text, env={"AGENT_MAX_RETRIES": "2"}
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "stdin.answers.jsonl"  # the default output for stdin
    rows = rows_by_id(out)
    assert {i: r["status"] for i, r in rows.items()} == {"r1": "ok", "r2": "ok", "r3": "ok", "r5": "ok", 7: "ok"}
    assert rows["r1"]["answer"].startswith("Let me think about that slowly.")
    assert "5" in rows["r2"]["answer"] and "42" in rows["r3"]["answer"] and "144" in rows["r5"]["answer"]
    assert rows["r5"]["lang"] == "zh" and any(ord(c) in CJK for c in rows["r5"]["answer"])
    assert rows[7]["question"] == "hi" and rows[7]["line"] == 7  # no id: its line number
    assert {i: r["retries"] for i, r in rows.items()} == {"r1": 0, "r2": 0, "r3": 1, "r5": 0, 7: 0}
    assert asked(vllm, "retry me") == 3  # the 503, its retry, and the answer after the tool
    order = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert order.index(7) < order.index("r1")  # rows land as they finish (r1 streams 240 tokens), each under its id
    assert "Skipped 1 blank line." in proc.stderr and "model calls / retries" in proc.stdout


def test_q_jsonl_and_q_csv_get_their_own_outputs_and_answered_rows_with_failed_tools_are_flagged(vllm, tmp_path):
    (tmp_path / "q.jsonl").write_text(
        '{"id": "a", "question": "What is 1/0?"}\n{"id": "b", "question": "What is 6*7?"}\n'
    )
    (tmp_path / "q.csv").write_text("id,question\nc,What is 2+3?\n")
    first = run_cli("batch", "q.jsonl")
    assert first.returncode == 0, first.stderr  # every row ok: a failed tool call does not fail the row
    assert "2 (100%) · 1 with tool errors" in first.stdout
    second = run_cli("batch", "q.csv")  # not refused: its default output is its own
    assert second.returncode == 0, second.stderr
    rows = rows_by_id(tmp_path / "q.jsonl.answers.jsonl")
    assert {i: (r["status"], r["tool_errors"]) for i, r in rows.items()} == {"a": ("ok", 1), "b": ("ok", 0)}
    assert any(s["kind"] == "tool" and s["status"] == "error" for s in rows["a"]["steps"])
    assert set(rows_by_id(tmp_path / "q.csv.answers.jsonl")) == {"c"} and "with tool errors" not in second.stdout

    report = run_cli("report", "q.jsonl.answers.jsonl", "--html", "q.html")
    assert report.returncode == 0, report.stderr
    assert "1 with tool errors" in report.stdout
    page = (tmp_path / "q.html").read_text(encoding="utf-8")
    assert '<tr class="tool-errors" data-status="tool-errors">' in page and "ok · 1 tool error<" in page


def test_kill_9_mid_run_then_resume_gives_exactly_one_row_per_id(vllm, tmp_path):
    vllm.config.token_delay = 0.006  # ~0.3 s per question
    source = tmp_path / "q.txt"
    source.write_text("".join(f"hello number {i}\n" for i in range(1, 25)))
    out = tmp_path / "out.jsonl"
    proc = start_batch(str(source), "-o", str(out), "--concurrency", "4")
    try:
        poll(lambda: complete_lines(out) >= 4, "the first rows")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    before = out.read_bytes()
    kept = before[: before.rfind(b"\n") + 1]
    assert 4 <= kept.count(b"\n") < 24
    with out.open("ab") as torn:  # as if the kill had landed in the middle of a write
        torn.write(b'{"id": 24, "line": 24, "question": "hello num')
    proc2 = run_cli("batch", str(source), "-o", str(out), "--resume", "--concurrency", "8")
    assert proc2.returncode == 0, proc2.stderr
    assert "Repaired" in proc2.stderr and f"Resuming {out}" in proc2.stderr
    rows = rows_by_id(out)
    assert set(rows) == set(range(1, 25)) and all(r["status"] == "ok" for r in rows.values())
    assert out.read_bytes().startswith(kept)  # the rows written before the kill are untouched
    again = run_cli("batch", str(source), "-o", str(out), "--resume")
    assert again.returncode == 0 and "Nothing to do" in again.stderr and len(rows_by_id(out)) == 24


def test_ctrl_c_closes_in_flight_requests_and_prints_the_resume_command(vllm, tmp_path):
    vllm.script_for("hang here", Reply(hang=True), Reply(hang=True))
    source = tmp_path / "q.txt"
    source.write_text("quick 1\nhang here 2\nquick 3\nhang here 4\nquick 5\nquick 6\n")
    out = tmp_path / "out.jsonl"
    proc = start_batch(str(source), "-o", str(out), "--concurrency", "4")
    try:
        poll(lambda: complete_lines(out) == 4 and asked(vllm, "hang here") == 2, "the quick rows and two hung requests")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    command = f"python -m graph.cli batch {source} -o {out} --resume --concurrency 4"
    assert f"Interrupted: 4 of 6 questions have a row in {out}. Resume with: {command}" in stderr
    poll(lambda: vllm.disconnects >= 2, "the server to see both hung requests closed", timeout=10)
    assert set(rows_by_id(out)) == {1, 3, 5, 6}
    resumed = run_cli(*shlex.split(command)[3:])
    assert resumed.returncode == 0, resumed.stderr
    assert set(rows_by_id(out)) == set(range(1, 7))


def test_fail_fast_stops_at_the_first_failed_row(vllm, tmp_path):
    vllm.script_for("boom", Reply(status=500))
    source = tmp_path / "q.txt"
    source.write_text("hi\nboom\nhello\nhey\n")
    proc = run_cli("batch", str(source), "-o", "out.jsonl", "--concurrency", "1", "--fail-fast")
    assert proc.returncode == 1
    assert "Stopped at the first failed row (--fail-fast): id 2: The model server failed" in proc.stderr
    assert "--resume --concurrency 1 --fail-fast" in proc.stderr
    assert {i: r["status"] for i, r in rows_by_id(tmp_path / "out.jsonl").items()} == {1: "ok", 2: "error"}


def test_unreachable_server_stops_the_batch_with_exit_3(tmp_path):
    source = tmp_path / "q.txt"
    source.write_text("hi\nhello\n")
    proc = run_cli("batch", str(source), "--model", "Qwen/Qwen2.5-7B-Instruct")  # OPENAI_API_BASE: a closed port
    assert proc.returncode == 3, proc.stderr
    assert "Cannot reach the model server at http://127.0.0.1:9/v1" in proc.stderr and "--resume" in proc.stderr
    assert not (tmp_path / "q.txt.answers.jsonl").exists()  # no row claims those questions failed
    assert f"-o {tmp_path / 'q.txt.answers.jsonl'} --resume" in proc.stderr  # the hint names the default output
    no_traceback(proc)


def test_usage_errors_exit_2_and_touch_nothing(tmp_path):
    good = tmp_path / "q.txt"
    good.write_text("hi\n")
    existing = tmp_path / "q.txt.answers.jsonl"
    existing.write_text('{"id": 1, "status": "ok"}\n')
    old = tmp_path / "old.txt"
    old.write_text("hi\n")
    old_default = tmp_path / "old.answers.jsonl"  # the default name before it kept the extension
    old_default.write_text('{"id": 1, "status": "ok"}\n')
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory\n")
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes("你好\n".encode("gbk"))
    no_column = tmp_path / "q.csv"
    no_column.write_text("id,prompt\n1,hi\n")
    cases = [
        ((str(good),), "q.txt.answers.jsonl already exists; pass --resume to continue it, or -o"),
        ((str(old), "--resume"), f"but {old_default} does (the default output name before"),
        ((str(old), "--resume"), f"pass -o {old_default} --resume to continue that one"),
        ((str(good), "-o", str(blocker / "out.jsonl")), "is not a directory"),
        ((str(gbk), "-o", "x.jsonl"), "is not UTF-8: byte 0xc4 on line 1, column 1"),
        ((str(no_column),), "has no 'question' column"),
        ((str(tmp_path / "missing.jsonl"),), "cannot read"),
        ((str(good), "-o", "x.jsonl", "--concurrency", "0"), "0 is not in the range"),
    ]
    for args, message in cases:
        proc = run_cli("batch", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        no_traceback(proc)
    assert existing.read_text() == '{"id": 1, "status": "ok"}\n' and not (tmp_path / "x.jsonl").exists()
    assert old_default.read_text() == '{"id": 1, "status": "ok"}\n'
    assert not (tmp_path / "old.txt.answers.jsonl").exists()
    bad = run_cli("report", str(blocker))
    assert bad.returncode == 2 and "is not a batch row" in bad.stderr


async def test_a_batch_of_only_bad_rows_writes_them_and_runs_nothing(tmp_path):
    cfg = BatchConfig(settings=load_settings(), model="m", concurrency=4, max_steps=2)
    bad = [
        Question(id=1, line=1, question=None, problem="line 1: empty line"),
        Question(id="b", line=2, question="", problem="line 2: the question is empty"),
    ]
    with RowWriter(tmp_path / "out.jsonl") as writer:
        await run_batch(cfg, bad, writer, Progress(len(bad)))
    rows = rows_by_id(tmp_path / "out.jsonl")
    assert {i: (r["status"], r["error"]) for i, r in rows.items()} == {
        1: ("error", "line 1: empty line"),
        "b": ("error", "line 2: the question is empty"),
    }
