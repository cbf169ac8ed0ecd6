"""The scripted server's /metrics: the vLLM 0.33 Prometheus series it can know (v1/metrics/loggers.py names)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LABELS = ("model_name", "engine")
ENGINE = "0"  # one engine core, data-parallel rank 0
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")  # v1/engine FinishReason
# v1/metrics/loggers.py histogram_buckets for time_to_first_token and request_latency
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


class DemoMetrics:
    """One registry per server, so several scripted servers in one process keep separate counts."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.running = Gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", LABELS, registry=reg
        )
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", LABELS, registry=reg
        )
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", LABELS, registry=reg)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Number of generation tokens processed.", LABELS, registry=reg
        )
        self.success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            (*LABELS, "finished_reason"),
            registry=reg,
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            LABELS,
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            LABELS,
            buckets=E2E_BUCKETS,
            registry=reg,
        )
        self._models: set[str] = set()

    def _labels(self, model: str) -> tuple[str, str]:
        if model not in self._models:  # vLLM creates every series at start-up, at zero
            self._models.add(model)
            for gauge in (self.running, self.waiting):
                gauge.labels(model, ENGINE)
            for counter in (self.prompt_tokens, self.generation_tokens):
                counter.labels(model, ENGINE)
            for reason in FINISH_REASONS:
                self.success.labels(model, ENGINE, reason)
            self.ttft.labels(model, ENGINE)
            self.e2e.labels(model, ENGINE)
        return model, ENGINE

    def started(self, model: str, prompt_tokens: int) -> None:
        """A request entered generation (its prompt was prefilled)."""
        labels = self._labels(model)
        self.running.labels(*labels).inc()
        self.prompt_tokens.labels(*labels).inc(prompt_tokens)

    def finished(self, model: str, reason: str, generated: int, ttft: float | None, e2e: float) -> None:
        """A request left generation, with its finish reason and the tokens it generated."""
        labels = self._labels(model)
        self.running.labels(*labels).dec()
        self.generation_tokens.labels(*labels).inc(generated)
        self.success.labels(*labels, reason if reason in FINISH_REASONS else "abort").inc()
        if ttft is not None:
            self.ttft.labels(*labels).observe(ttft)
        self.e2e.labels(*labels).observe(e2e)

    def text(self, model: str) -> bytes:
        """The Prometheus exposition, with every series present from the first scrape."""
        self._labels(model)
        return generate_latest(self.registry)
