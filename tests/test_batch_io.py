"""Batch input parsing, the output file (writer, resume, torn-line repair) and the summary, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graph.batch.inputs import BatchInputError, Question, detect_format, load_questions
from graph.batch.outputs import (
    RowWriter,
    check_old_default,
    check_output,
    count_tool_errors,
    default_output,
    input_failure_row,
    output_row,
    read_rows,
    repair,
    run_record,
)
from graph.batch.report import busy_seconds, summarize


def write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def by_line(rows):
    return {q.line: q for q in rows}


def test_format_from_extension_override_and_sniffing():
    assert detect_format("q.jsonl", b"") == "jsonl"
    assert detect_format("Q.CSV", b"") == "csv"
    assert detect_format("q.txt", b'{"question": "x"}') == "text"
    assert detect_format("q.txt", b"", "jsonl") == "jsonl"
    assert detect_format("-", b'\xef\xbb\xbf\n  {"question": "x"}\n') == "jsonl"
    assert detect_format("-", b"What time is it?\n") == "text"


def test_jsonl_ids_carried_fields_and_every_bad_row_with_its_line(tmp_path):
    lines = [
        '{"id": "q-1", "question": " What time is it in Tokyo? ", "topic": "time", "answer": "gold"}',
        '{"question": "查询北京的天气"}',
        "{not json",
        "",
        '["a list"]',
        '{"id": "q-6"}',
        '{"question": 42, "id": "q-7"}',
        '{"question": "   "}',
        '{"id": {"x": 1}, "question": "hi"}',
        '{"id": 10, "question": "What is 2^10?"}',
    ]
    rows, blank = load_questions(write(tmp_path / "q.jsonl", "\r\n".join(lines) + "\r\n"))
    assert blank == 0 and len(rows) == 10  # nothing dropped: one question per line
    q = by_line(rows)
    assert (q[1].id, q[1].question) == ("q-1", "What time is it in Tokyo?")
    assert q[1].fields == {"topic": "time", "answer": "gold"}
    assert (q[2].id, q[2].question, q[2].problem) == (2, "查询北京的天气", None)  # no id: its line number
    assert q[3].problem.startswith("line 3: invalid JSON (") and q[3].id == 3
    assert q[4].problem == "line 4: empty line (expected a JSON object)"
    assert q[5].problem == 'line 5: expected a JSON object with a "question", got an array'
    assert (q[6].id, q[6].problem) == ("q-6", 'line 6: no "question" field')
    assert q[7].problem == 'line 7: "question" must be a string, got 42' and q[7].fields == {"input_question": 42}
    assert q[8].problem == "line 8: the question is empty"
    assert q[9].id == 9 and "the id must be a non-empty string or a number" in q[9].problem
    assert (q[10].id, q[10].key, q[10].problem) == (10, "10", None)


def test_csv_bom_header_case_optional_id_quoted_multiline_and_bad_rows(tmp_path):
    text = (
        "\ufeffID,Question,lang\r\n"
        'a,"Weather in Paris, France?",en\r\n'
        "\r\n"
        ',"two\nlines",en\r\n'
        "c,,zh\r\n"
        "d,too,many,fields\r\n"
        "e,北京现在几点？,zh\r\n"
    )
    rows, blank = load_questions(write(tmp_path / "q.csv", text.encode("utf-8")))
    assert blank == 1
    q = by_line(rows)
    assert (q[2].id, q[2].question, q[2].fields) == ("a", "Weather in Paris, France?", {"lang": "en"})
    assert (q[4].id, q[4].question) == (4, "two\nlines")  # no id: the line the record starts on
    assert q[6].problem == "line 6: the question is empty"
    assert q[7].problem == "line 7: 4 fields, but the header has 3"
    assert (q[8].id, q[8].question) == ("e", "北京现在几点？")


def test_csv_without_question_column_or_with_broken_quoting_is_a_usage_error(tmp_path):
    with pytest.raises(BatchInputError, match="has no 'question' column; its header is: id, prompt"):
        load_questions(write(tmp_path / "q.csv", "id,prompt\n1,hi\n"))
    with pytest.raises(BatchInputError, match="is not valid CSV at line 2"):
        load_questions(write(tmp_path / "bad.csv", 'question\n"a"b\n'))


def test_text_skips_blank_lines_and_keeps_line_number_ids(tmp_path):
    rows, blank = load_questions(write(tmp_path / "q.txt", "first?\n\n  second?  \r\n\n"))
    assert [(q.id, q.question) for q in rows] == [(1, "first?"), (3, "second?")]
    assert blank == 2


def test_invalid_utf8_and_utf16_get_one_clear_line(tmp_path):
    path = write(tmp_path / "q.txt", "ok\n北京".encode("gbk"))
    with pytest.raises(BatchInputError) as err:
        load_questions(path)
    assert str(err.value).startswith(f"{path} is not UTF-8: byte 0xb1 on line 2, column 1.")
    assert "iconv -f GBK -t UTF-8" in str(err.value)
    with pytest.raises(BatchInputError, match="is UTF-16 text; save it as UTF-8"):
        load_questions(write(tmp_path / "u.txt", "hi\n".encode("utf-16")))


def test_duplicate_and_colliding_ids_and_empty_input_are_refused(tmp_path):
    with pytest.raises(BatchInputError, match="id 'x' is on line 1 and on line 3 of"):
        load_questions(
            write(tmp_path / "d.jsonl", '{"id":"x","question":"a"}\n{"question":"b"}\n{"id":"x","question":"c"}\n')
        )
    with pytest.raises(BatchInputError, match="id 2 is on line 1 and on line 2"):  # explicit 2 vs line number 2
        load_questions(write(tmp_path / "c.jsonl", '{"id":2,"question":"a"}\n{"question":"b"}\n'))
    with pytest.raises(BatchInputError, match="has no questions"):
        load_questions(write(tmp_path / "e.txt", "\n \n"))


def test_output_row_keeps_input_fields_that_clash_with_result_fields():
    q = Question(id="a", line=3, question="hi", fields={"answer": "gold", "topic": "t"})
    row = output_row(q, status="ok", answer="hello")
    assert row == {
        "id": "a",
        "line": 3,
        "question": "hi",
        "status": "ok",
        "answer": "hello",
        "input_answer": "gold",
        "topic": "t",
    }
    failed = input_failure_row(Question(id=4, line=4, question=None, problem="line 4: empty line"))
    assert failed["status"] == "error" and failed["error"] == "line 4: empty line" and failed["steps"] == []
    assert failed["tool_errors"] == 0


def test_output_row_counts_the_failed_tool_calls_and_carries_a_clashing_tool_errors_field():
    steps = [
        {"kind": "model", "status": "ok"},
        {"kind": "tool", "name": "calculate", "status": "error"},
        {"kind": "tool", "name": "calculate", "status": "ok"},
        {"kind": "tool", "name": "x", "status": "error"},
    ]
    q = Question(id="a", line=1, question="hi", fields={"tool_errors": "mine", "run": 7})
    row = output_row(q, status="ok", answer="hello", steps=steps)
    assert row["tool_errors"] == 2 and row["input_tool_errors"] == "mine" and row["input_run"] == 7
    assert list(row)[:7] == ["id", "line", "question", "status", "answer", "steps", "tool_errors"]
    assert count_tool_errors(None) == 0 and count_tool_errors(steps[:1]) == 0


def test_default_output_is_the_whole_input_name_plus_answers_jsonl():
    assert default_output("data/q.csv") == Path("data/q.csv.answers.jsonl")
    assert default_output("问题.jsonl") == Path("问题.jsonl.answers.jsonl")
    assert default_output("-") == Path("stdin.answers.jsonl")
    names = [
        "q.jsonl",
        "q.csv",
        "q.txt",
        "q.ndjson",
        "q.text",
        "q",
        "q.JSONL",
        "q.tar.gz",
        "q.answers",
        "q.answers.jsonl",
    ]
    outputs = [default_output(f"data/{name}") for name in names]
    assert len(set(outputs)) == len(names)  # inputs that differ only by extension never share an output
    assert all(out.parent == Path("data") and out.name.endswith(".answers.jsonl") for out in outputs)


def test_resume_refuses_to_start_afresh_beside_an_output_under_the_old_default_name(tmp_path):
    source = tmp_path / "q.csv"
    check_old_default(str(source))  # nothing there: fine
    (tmp_path / "q.answers.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(BatchInputError) as err:
        check_old_default(str(source))
    assert str(err.value) == (
        f"{tmp_path / 'q.csv.answers.jsonl'} does not exist, but {tmp_path / 'q.answers.jsonl'} does (the default "
        f"output name before it kept the input's extension): pass -o {tmp_path / 'q.answers.jsonl'} --resume to "
        "continue that one."
    )
    (tmp_path / "q.csv.answers.jsonl").write_text("")
    check_old_default(str(source))  # the new name is there: that one is resumed
    check_old_default("-")


def test_output_checks(tmp_path):
    existing = tmp_path / "out.jsonl"
    existing.write_text("")
    with pytest.raises(BatchInputError, match="already exists; pass --resume to continue it, or -o"):
        check_output(existing, "q.jsonl", resume=False)
    check_output(existing, "q.jsonl", resume=True)
    check_output(tmp_path / "new" / "dir" / "out.jsonl", "q.jsonl", resume=False)  # created on first write
    with pytest.raises(BatchInputError, match="is not a directory"):
        check_output(existing / "x.jsonl", "q.jsonl", resume=False)
    with pytest.raises(BatchInputError, match="is the input file"):
        check_output(existing, str(existing), resume=True)
    with pytest.raises(BatchInputError, match="it is a directory"):
        check_output(tmp_path, "q.jsonl", resume=True)


async def test_writer_appends_whole_lines_in_finish_order(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with RowWriter(path) as writer:
        writer.write_now({"id": 1, "answer": "北京"})
        await writer.write({"id": "b", "answer": "line\nbreak"})
    with RowWriter(path) as writer:  # appends, never truncates
        await writer.write({"id": 3})
    assert writer.count == 1
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, "b", 3]
    assert "北京" in lines[0]  # readable UTF-8, not \\u escapes


async def test_writer_stamps_every_row_with_the_run_settings(tmp_path):
    run = run_record(model="m", endpoints=["gpu-1:8000", "gpu-2:8000"], concurrency=4, max_steps=3, timeout=None)
    assert set(run) == {"started_at", "model", "endpoints", "concurrency", "max_steps", "timeout"}
    path = tmp_path / "out.jsonl"
    with RowWriter(path, run=run) as writer:
        writer.write_now({"id": 1, "status": "error"})
        await writer.write({"id": 2, "status": "ok"})
    rows, _ = read_rows(path)
    assert [r["run"] for r in rows] == [run, run] and [r["id"] for r in rows] == [1, 2]


def test_torn_last_line_is_cut_and_everything_else_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    good = '{"id": 1, "status": "ok"}\n{"id": 2, "status": "error"}\n'
    path.write_bytes(good.encode() + b'{"id": 3, "stat')
    rows, torn = read_rows(path)
    assert [r["id"] for r in rows] == [1, 2] and torn == len(b'{"id": 3, "stat')
    repair(path, torn)
    assert path.read_text() == good
    assert read_rows(path) == (rows, 0)


def test_a_broken_complete_line_is_not_silently_dropped(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": 1}\nnot json\n{"id": 3}\n')
    with pytest.raises(BatchInputError, match="line 2 of .* is not a batch row"):
        read_rows(path)


def _row(i, status="ok", latency=1000.0, start=100.0, tools=(), error=None, stopped=None):
    steps = [{"kind": "model", "tokens_in": 10, "tokens_out": 5}]
    steps += [{"kind": "tool", "name": n, "status": s, "recovered": r} for n, s, r in tools]
    return {
        "id": i,
        "status": status,
        "latency_ms": latency,
        "started_at": start,
        "error": error,
        "stopped": stopped,
        "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        "retries": 1 if i == 2 else 0,
        "steps": steps,
    }


def test_summary_percentiles_wall_time_tools_and_errors():
    rows = [_row(i, latency=100.0 * i, start=100.0) for i in range(1, 101)]
    rows[0]["steps"].append({"kind": "tool", "name": "calculate", "status": "ok", "recovered": True})
    rows.append(_row("x", "error", 0.0, error="line 7: invalid JSON (Expecting value at column 1)"))
    rows.append(_row("y", "error", 0.0, error="line 9: invalid JSON (Expecting value at column 1)"))
    rows.append(
        _row(
            "z",
            "error",
            500.0,
            start=300.0,
            tools=[("get_city_weather", "error", False)],
            error="Stopped early: ...",
            stopped="max_steps",
        )
    )
    s = summarize(rows)
    assert (s.total, s.ok, s.failed) == (103, 100, 3)
    assert s.percentile(50) == pytest.approx(5050.0) and s.percentile(99) == pytest.approx(9901.0)
    assert s.wall_s == pytest.approx(10.0 + 0.5)  # the union of the spans, not their sum
    assert (s.tokens_in, s.tokens_out, s.model_calls, s.retries) == (1030, 515, 103, 1)
    assert s.tools["calculate"] == {"ok": 1, "error": 0, "recovered": 1} and s.recovered == 1
    assert s.tools["get_city_weather"]["error"] == 1 and s.stopped == {"max_steps": 1}
    assert s.errors.most_common(1) == [("invalid JSON (Expecting value at column 1)", 2)]
    labels = dict(s.lines())
    assert labels["ok"] == "100 (97%)" and labels["stopped early"] == "max steps 1"


def test_busy_seconds_merges_overlaps_and_skips_gaps():
    assert busy_seconds([(0, 2), (1, 3), (10, 11), (10.5, 10.6)]) == pytest.approx(4.0)
    assert busy_seconds([]) == 0.0
