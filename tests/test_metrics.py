"""Prometheus metrics from trace records: exact counts, label hygiene, the stand-alone server and the UI's /metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from graph.obs import metrics
from graph.obs.metrics import record_question, record_turn, start_metrics_server
from graph.trace import Skip, Step
from tests.ui_fixtures import UiApp, ui_app, ui_workdir  # noqa: F401 - fixtures are used by name

QUESTION = "What is the weather in Ulaanbaatar for thread 4f1c-secret-thread?"
COUNTERS = {
    "work_agent_questions",
    "work_agent_answers",
    "work_agent_tool_calls",
    "work_agent_model_calls",
    "work_agent_tokens",
    "work_agent_recovered_tool_calls",
    "work_agent_fallbacks",
    "work_agent_tool_decisions",
}
HISTOGRAMS = {
    "work_agent_steps_per_answer",
    "work_agent_tool_duration_seconds",
    "work_agent_model_ttft_seconds",
    "work_agent_model_duration_seconds",
}


def exposition() -> str:
    return generate_latest(REGISTRY).decode()


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every work_agent_ sample, keyed by (sample name, label set), parsed as Prometheus would."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition())
        if family.name.startswith("work_agent_")
        for s in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def model_step(node: str = "plan", **kw: Any) -> Step:
    return Step(kind="model", turn=1, node=node, started_at=time.time(), **kw)


def tool_step(name: str, **kw: Any) -> Step:
    kw.setdefault("duration_ms", 1.0)
    return Step(kind="tool", turn=1, node="call_tool", started_at=time.time(), name=name, **kw)


def a_turn(ep: str) -> list[Step]:
    """Two model calls (one on an unknown endpoint), three tool calls, failovers of every kind."""
    return [
        model_step(
            endpoint=f"{ep}-a:8000",
            duration_ms=1500,
            ttft_ms=250,
            tokens_in=100,
            tokens_out=20,
            tool_calls=["get_city_weather", "calculate", "calculate"],
            skipped=[f"{ep}-x:8000: timed out", f"{ep}-y:8000: HTTP 503"],
        ),
        tool_step("get_city_weather", duration_ms=120, recovered=True, arguments={"city": QUESTION}, result=QUESTION),
        tool_step("calculate", duration_ms=5, status="error", error=f"bad expression {QUESTION}"),
        tool_step("calculate", duration_ms=7, result="42"),
        model_step(
            "answer",
            endpoint=None,
            duration_ms=800,
            tokens_in=150,
            tokens_out=30,
            skipped=[
                f"{ep}-x:8000: cooling down after timed out",
                f"{ep}-z:8000: connection failed (ConnectError)",
                f"{ep}-y:8000: HTTP 429",
                f"{ep}-w:8000: HTTP 401",
            ],
        ),
    ]


def test_record_turn_counts_every_step():
    ep = "counts"
    before = scrape()
    record_question("ui")
    record_turn(a_turn(ep), interface="ui", status="ok")
    after = scrape()
    d = lambda name, **labels: delta(before, after, name, **labels)  # noqa: E731

    assert d("work_agent_questions_total", interface="ui") == 1
    assert d("work_agent_answers_total", interface="ui", status="ok") == 1
    assert d("work_agent_steps_per_answer_count") == 1
    assert d("work_agent_steps_per_answer_sum") == 3
    assert d("work_agent_steps_per_answer_bucket", le="2.0") == 0
    assert d("work_agent_steps_per_answer_bucket", le="3.0") == 1

    assert d("work_agent_tool_calls_total", tool="get_city_weather", status="ok") == 1
    assert d("work_agent_tool_calls_total", tool="calculate", status="ok") == 1
    assert d("work_agent_tool_calls_total", tool="calculate", status="error") == 1
    assert d("work_agent_tool_duration_seconds_count", tool="calculate") == 2
    assert d("work_agent_tool_duration_seconds_sum", tool="calculate") == pytest.approx(0.012)
    assert d("work_agent_tool_duration_seconds_bucket", tool="get_city_weather", le="0.1") == 0
    assert d("work_agent_tool_duration_seconds_bucket", tool="get_city_weather", le="0.25") == 1
    assert d("work_agent_recovered_tool_calls_total") == 1

    assert d("work_agent_model_calls_total", endpoint=f"{ep}-a:8000") == 1
    assert d("work_agent_model_calls_total", endpoint="unknown") == 1
    assert d("work_agent_model_duration_seconds_sum", endpoint=f"{ep}-a:8000") == pytest.approx(1.5)
    assert d("work_agent_model_duration_seconds_bucket", endpoint=f"{ep}-a:8000", le="1.0") == 0
    assert d("work_agent_model_duration_seconds_bucket", endpoint=f"{ep}-a:8000", le="2.0") == 1
    assert d("work_agent_model_duration_seconds_sum", endpoint="unknown") == pytest.approx(0.8)
    assert d("work_agent_model_ttft_seconds_count", endpoint=f"{ep}-a:8000") == 1
    assert d("work_agent_model_ttft_seconds_sum", endpoint=f"{ep}-a:8000") == pytest.approx(0.25)
    assert d("work_agent_model_ttft_seconds_count", endpoint="unknown") == 0  # ttft_ms was None
    assert d("work_agent_tokens_total", endpoint=f"{ep}-a:8000", kind="prompt") == 100
    assert d("work_agent_tokens_total", endpoint=f"{ep}-a:8000", kind="completion") == 20
    assert d("work_agent_tokens_total", endpoint="unknown", kind="prompt") == 150
    assert d("work_agent_tokens_total", endpoint="unknown", kind="completion") == 30

    fallbacks = {
        (dict(labels)["endpoint"], dict(labels)["reason"]): after[(name, labels)] - before.get((name, labels), 0.0)
        for name, labels in after
        if name == "work_agent_fallbacks_total" and dict(labels)["endpoint"].startswith(f"{ep}-")
    }
    assert fallbacks == {
        (f"{ep}-x:8000", "timeout"): 1,
        (f"{ep}-y:8000", "http_5xx"): 1,
        (f"{ep}-x:8000", "cooldown"): 1,
        (f"{ep}-z:8000", "connection"): 1,
        (f"{ep}-y:8000", "http_429"): 1,
        (f"{ep}-w:8000", "http_4xx"): 1,
    }


def test_turn_outcomes_and_unknown_labels():
    before = scrape()
    record_turn([tool_step("calculate", duration_ms=1)], interface="batch", status="error")
    record_turn([tool_step("calculate", duration_ms=1)] * 2, interface="cli", status="stopped")
    record_turn([], interface="telegram", status="weird")
    record_question("telegram")
    after = scrape()
    d = lambda name, **labels: delta(before, after, name, **labels)  # noqa: E731

    assert d("work_agent_answers_total", interface="batch", status="error") == 1
    assert d("work_agent_answers_total", interface="cli", status="stopped") == 1
    assert d("work_agent_answers_total", interface="other", status="other") == 1
    assert d("work_agent_questions_total", interface="other") == 1
    assert d("work_agent_steps_per_answer_count") == 2  # the failed turn answered nothing
    assert d("work_agent_steps_per_answer_sum") == 2
    assert d("work_agent_tool_calls_total", tool="calculate", status="ok") == 3


def test_every_interface_and_status_series_exists_from_the_start():
    values = scrape()
    for interface in metrics.INTERFACES:
        assert ("work_agent_questions_total", frozenset({("interface", interface)})) in values
        for status in metrics.STATUSES:
            key = frozenset({("interface", interface), ("status", status)})
            assert ("work_agent_answers_total", key) in values


@pytest.mark.parametrize(
    ("why", "reason"),
    [
        ("connection failed (ConnectError)", "connection"),
        ("connection failed (RemoteProtocolError)", "connection"),
        ("timed out", "timeout"),
        ("HTTP 500", "http_5xx"),
        ("HTTP 503", "http_5xx"),
        ("HTTP 429", "http_429"),
        ("HTTP 404", "http_4xx"),
        ("HTTP 401", "http_4xx"),
        ("cooling down after HTTP 503", "cooldown"),
        ("cooling down after connection failed (ConnectError)", "cooldown"),
        ("something new", "other"),
    ],
)
def test_skip_reason_of_legacy_text(why, reason):
    """Old threads and batch rows recorded skips as 'host:port: why' text; they still count by reason."""
    assert Skip.from_text(f"gpu1:8000: {why}").reason == reason


def test_legacy_skip_text_keeps_the_endpoint_and_copes_with_odd_entries():
    assert (Skip.from_text("gpu1:8000: HTTP 502").endpoint, Skip.from_text("gpu1:8000: HTTP 502").reason) == (
        "gpu1:8000",
        "http_5xx",
    )
    assert Skip.from_text("::1:8000: timed out").endpoint == "::1:8000"
    assert (Skip.from_text("garbage").endpoint, Skip.from_text("garbage").reason) == ("unknown", "other")


def test_tool_label_caps_unknown_names(monkeypatch):
    monkeypatch.setattr(metrics, "_seen_tools", set())
    names = [f"made_up_{i}" for i in range(metrics.MAX_TOOL_LABELS)]
    assert [metrics.tool_label(tool_step(n, duration_ms=1)) for n in names] == names
    assert metrics.tool_label(tool_step("one_too_many", duration_ms=1)) == "other"
    assert metrics.tool_label(tool_step(names[0], duration_ms=1)) == names[0]  # already a label: stays one
    assert metrics.tool_label(tool_step("get_wether", duration_ms=1, unknown_tool=True)) == "other"
    assert metrics.tool_label(Step(kind="tool", turn=1, node="call_tool", started_at=0, duration_ms=1)) == "other"


def test_unknown_tools_keep_hallucinated_names_out_of_the_labels():
    record_turn(
        [tool_step("hallucinated_tool_xyz", duration_ms=1, status="error", unknown_tool=True)],
        interface="cli",
        status="ok",
    )
    assert "hallucinated_tool_xyz" not in exposition()


def test_no_question_thread_or_argument_in_the_exposition():
    record_question("api")
    record_turn(a_turn("privacy"), interface="api", status="ok")
    text = exposition()
    assert "Ulaanbaatar" not in text and "4f1c-secret-thread" not in text and "bad expression" not in text


def test_names_follow_prometheus_conventions():
    record_turn(a_turn("names"), interface="cli", status="ok")
    families = {f.name: f for f in text_string_to_metric_families(exposition()) if f.name.startswith("work_agent_")}
    assert {n for n, f in families.items() if f.type == "counter"} == COUNTERS
    assert {n for n, f in families.items() if f.type == "histogram"} == HISTOGRAMS
    assert {n for n, f in families.items() if f.type == "gauge"} == {"work_agent_mcp_servers"}
    assert set(families) == COUNTERS | HISTOGRAMS | {"work_agent_mcp_servers"}
    for name in COUNTERS:
        assert {s.name for s in families[name].samples} == {f"{name}_total"}
    for name in HISTOGRAMS - {"work_agent_steps_per_answer"}:
        assert name.endswith("_seconds")
    text = exposition()
    for name in (
        "work_agent_questions_total",
        "work_agent_answers_total",
        "work_agent_steps_per_answer",
        "work_agent_tool_calls_total",
        "work_agent_tool_duration_seconds",
        "work_agent_model_calls_total",
        "work_agent_model_ttft_seconds",
        "work_agent_model_duration_seconds",
        "work_agent_tokens_total",
        "work_agent_recovered_tool_calls_total",
        "work_agent_fallbacks_total",
    ):
        kind = "counter" if name.endswith("_total") else "histogram"
        assert f"\n# TYPE {name} {kind}\n" in text


def test_buckets_cover_llm_latencies():
    assert metrics.TTFT_BUCKETS[0] == 0.05 and metrics.TTFT_BUCKETS[-1] == 30
    assert metrics.MODEL_BUCKETS[0] == 0.1 and metrics.MODEL_BUCKETS[-1] == 120
    assert metrics.TOOL_BUCKETS[0] == 0.01 and metrics.TOOL_BUCKETS[-1] == 60


def test_metrics_server_serves_and_stops():
    server = start_metrics_server(0)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        record_question("batch")
        with httpx.Client(trust_env=False, timeout=5) as http:
            resp = http.get(url)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(resp.text)}
        assert "work_agent_questions" in names and "work_agent_fallbacks" in names
    finally:
        server.stop()
    with pytest.raises(httpx.HTTPError), httpx.Client(trust_env=False, timeout=2) as http:
        http.get(url)


async def test_metrics_asgi_app_serves_the_registry():
    transport = httpx.ASGITransport(app=metrics.metrics_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        resp = await http.get("/")
    assert resp.status_code == 200 and "work_agent_model_calls_total" in resp.text


# --- the web UI -----------------------------------------------------------------------------------


def test_ui_serves_metrics_next_to_the_page(ui_app: UiApp):
    with httpx.Client(trust_env=False, timeout=10) as http:
        resp = http.get(ui_app.url + "/metrics")
        page = http.get(ui_app.url + "/")
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text) if f.name.startswith("work_agent_")}
    assert {n for n, f in families.items() if f.type == "gauge"} == {"work_agent_mcp_servers"}
    assert set(families) == COUNTERS | HISTOGRAMS | {"work_agent_mcp_servers"}
    assert {s.labels["interface"] for s in families["work_agent_questions"].samples} == set(metrics.INTERFACES)
    assert page.status_code == 200 and "gradio" in page.text.lower()


class Built(Exception):
    """Raised by the stand-in build_app: main() got as far as building the page."""


@pytest.mark.parametrize(
    ("args", "base"),
    [
        ([], "http://127.0.0.1:9/v1"),
        (["--base-url", "http://gpu1:8000/v1/"], "http://gpu1:8000/v1"),
        (
            ["--base-url", "http://gpu1:8000/v1", "--base-url", "http://gpu2:8000/v1"],
            "http://gpu1:8000/v1,http://gpu2:8000/v1",
        ),
    ],
)
def test_base_url_may_repeat_for_failover(monkeypatch, args, base):
    from click.testing import CliRunner

    import ui.app

    seen = {}

    def build_app(backend):
        seen["settings"] = backend.settings
        raise Built

    monkeypatch.setattr(ui.app, "build_app", build_app)
    monkeypatch.setattr(ui.app, "setup_logging", lambda settings: None)  # keep the test process's logging
    result = CliRunner().invoke(ui.app.main, args)
    assert isinstance(result.exception, Built), result.output
    assert seen["settings"].openai_api_base == base
    assert [e.base_url for e in seen["settings"].endpoints()] == base.split(",")


def test_approval_decisions_are_counted_by_decision_with_a_bounded_label():
    before = scrape()

    def count(decision: str) -> float:
        key = ("work_agent_tool_decisions_total", frozenset({("decision", decision)}))
        return scrape().get(key, 0.0) - before.get(key, 0.0)

    steps = [
        tool_step("write_note", decision="approved"),
        tool_step("write_note", decision="edited"),
        tool_step("delete_note", status="error", error="User rejected it", decision="rejected"),
        tool_step("delete_note", status="error", error="not allowed", decision="denied"),
        tool_step("read_note"),  # auto: no decision, not counted
        tool_step("odd", decision="made-up"),
    ]
    record_turn(steps, interface="ui", status="ok")
    assert [count(d) for d in ("approved", "edited", "rejected", "denied", "other")] == [1, 1, 1, 1, 1]
    assert count("allowed") == 0


def test_mcp_server_gauge_counts_servers_by_state():
    metrics.record_mcp_servers(["ready", "ready", "failed", "disabled"])
    samples = scrape()
    value = {
        state: samples[("work_agent_mcp_servers", frozenset({("state", state)}))]
        for state in ("ready", "failed", "starting", "disabled")
    }
    assert value == {"ready": 2, "failed": 1, "starting": 0, "disabled": 1}
    metrics.record_mcp_servers(["ready"])
    assert scrape()[("work_agent_mcp_servers", frozenset({("state", "failed")}))] == 0
