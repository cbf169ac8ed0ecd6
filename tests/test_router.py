"""A real router (Debian's nginx, configured by deploy/nginx/router.conf) in front of two scripted vLLM
servers: a batch of 200 questions while one backend is killed in the middle and later restarted."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graph.demo.server import DemoConfig, DemoServer
from tests.system import require_tool

ROOT = Path(__file__).resolve().parent.parent
ROUTER_CONF = ROOT / "deploy" / "nginx" / "router.conf"
QUESTIONS = 200

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> str:
    return require_tool("nginx", "nginx")


def render(conf: str, listen: int, backends: list[int], tmp: Path) -> Path:
    """deploy/nginx/router.conf with the compose service names replaced by the test's servers."""
    servers = iter(backends)
    body = re.sub(r"server vllm-\d+:8000", lambda m: f"server 127.0.0.1:{next(servers)}", conf)
    body = body.replace("listen 8000;", f"listen 127.0.0.1:{listen};")
    # Short passive health-check window so the restarted backend is used again within the test.
    body = body.replace("fail_timeout=30s", "fail_timeout=1s")
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp}/client_body;\n"
        f" proxy_temp_path {tmp}/proxy;\n fastcgi_temp_path {tmp}/fastcgi;\n uwsgi_temp_path {tmp}/uwsgi;\n"
        f" scgi_temp_path {tmp}/scgi;\n{body}\n}}\n"
    )
    path = tmp / "nginx.conf"
    path.write_text(main)
    return path


@pytest.fixture
def router(tmp_path):
    """Two scripted vLLM servers behind nginx; yields (router_url, [server_a, server_b], ports)."""
    nginx = nginx_binary()  # first: a missing nginx skips before any server starts
    config = DemoConfig(first_token_delay=0.02, token_delay=0.004)
    a, b = DemoServer(config).start(), DemoServer(config).start()
    listen = free_port()
    conf = render(ROUTER_CONF.read_text(), listen, [a.port, b.port], tmp_path)
    check = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{listen}/v1"
    deadline = time.monotonic() + 20
    while True:  # poll until nginx answers
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "nginx did not start"
        time.sleep(0.1)
    servers = [a, b]
    try:
        yield url, servers
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for s in servers:
            s.stop()


def rows_in(path: Path) -> int:
    try:
        return path.read_text(encoding="utf-8").count("\n")
    except FileNotFoundError:
        return 0


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_batch_through_nginx_survives_a_backend_killed_and_restarted(router, tmp_path):
    url, (a, b) = router
    questions = tmp_path / "q.jsonl"
    cities = ["Tokyo", "London", "New York", "Paris", "Sydney"]
    questions.write_text(
        "".join(
            json.dumps({"id": i, "question": f"What time is it in {cities[i % 5]}?"}) + "\n" for i in range(QUESTIONS)
        ),
        encoding="utf-8",
    )
    out, metrics_file = tmp_path / "answers.jsonl", tmp_path / "metrics.prom"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "graph.cli",
            "batch",
            str(questions),
            "-o",
            str(out),
            "--concurrency",
            "8",
            "--base-url",
            url,
            "--metrics-port",
            str(port),
            "--metrics-file",
            str(metrics_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AGENT_MODEL": "Qwen/Qwen2.5-7B-Instruct",
            "AGENT_MAX_RETRIES": "3",
        },
    )
    killed_at = restarted_at = None
    live = ""
    while proc.poll() is None:
        done = rows_in(out)
        if killed_at is None and done >= 50:
            a.stop()  # backend A goes away mid-batch: its open requests are cut, new ones are refused
            killed_at, a_requests = done, len(a.requests)
        elif killed_at is not None and restarted_at is None and done >= 120:
            a.start()  # back on the same port
            a.reset()
            restarted_at = done
        try:
            live = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text or live
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert killed_at is not None and restarted_at is not None, "the batch ended before the backend was cycled"

    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in rows) == list(range(QUESTIONS))  # no row lost or duplicated
    assert all(r["status"] == "ok" and r["answer"] for r in rows)
    assert len(a.requests) > 0  # the restarted backend was used again
    assert a_requests > 0 and len(b.requests) > 0

    # The failover behind the router is in the trace: nginx's headers name the replica it passed over.
    skipped = [entry for r in rows for s in r["steps"] if s["kind"] == "model" for entry in s.get("skipped", [])]
    # Each entry is a Skip record (graph/trace.py): endpoint, reason, why.
    a_label = f"127.0.0.1:{a.port}"
    assert any(e["endpoint"] == a_label and e["why"].startswith("HTTP 502") for e in skipped), skipped[:5]
    router_label = url.removeprefix("http://").removesuffix("/v1")
    assert {s["endpoint"] for r in rows for s in r["steps"] if s["kind"] == "model"} == {router_label}

    # ... and in the metrics, whose final values match what the batch wrote.
    assert "work_agent_questions_total" in live
    final = metric_values(metrics_file.read_text())
    assert final[("work_agent_answers_total", (("interface", "batch"), ("status", "ok")))] == QUESTIONS
    assert final[("work_agent_questions_total", (("interface", "batch"),))] == QUESTIONS
    tool_calls = sum(1 for r in rows for s in r["steps"] if s["kind"] == "tool" and s["status"] == "ok")
    assert final[("work_agent_tool_calls_total", (("status", "ok"), ("tool", "get_current_time")))] == tool_calls
    model_calls = sum(1 for r in rows for s in r["steps"] if s["kind"] == "model")
    assert final[("work_agent_model_calls_total", (("endpoint", router_label),))] == model_calls
    fallbacks = sum(
        v
        for (name, labels), v in final.items()
        if name == "work_agent_fallbacks_total" and ("endpoint", a_label) in labels
    )
    assert fallbacks == sum(1 for e in skipped if e["endpoint"] == a_label) > 0
