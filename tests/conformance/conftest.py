"""The `real_vllm(*flags)` fixture: vLLM's real OpenAI server (from .venv-vllm) on a scripted engine core."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conformance.harness import (
    DEFAULT_START_TIMEOUT,
    RealVllm,
    ServerPool,
    Unavailable,
    check_installed,
    vllm_python,
)
from tests.system import MISSING_REQUIRED, REQUIRE_VAR, required

HERE = Path(__file__).resolve().parent
# Per test; the first test of a flag set also waits for its server to start (about 30-80 s on 2 cores).
TEST_TIMEOUT = DEFAULT_START_TIMEOUT + 120


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is `conformance` and `slow`, with room for a server start in its timeout."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.conformance)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture
def vllm_venv() -> Path:
    """The vLLM venv's python; skips the test without it (or with another vLLM than pinned), fails under CI."""
    try:
        check_installed()
        return vllm_python()
    except Unavailable as exc:
        problem = str(exc)
    if required():
        pytest.fail(MISSING_REQUIRED.format(missing=problem, var=REQUIRE_VAR), pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def real_vllm_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The session's servers, one per distinct flag tuple; all stopped at the end of the session."""
    pool = ServerPool(tmp_path_factory.mktemp("real-vllm"))
    yield pool
    pool.close()


@pytest.fixture
def real_vllm(vllm_venv: Path, real_vllm_pool: ServerPool) -> Callable[..., RealVllm]:
    """Factory: `server = real_vllm("--enable-auto-tool-choice", "--tool-call-parser", "hermes")`.

    Returns a running real vLLM OpenAI server (the version tests/conformance/requirements.txt pins, run by
    `.venv-vllm/bin/python` or $WORK_AGENT_VLLM_PYTHON) started with exactly those `vllm serve` flags on a
    free 127.0.0.1 port. Everything a client sees is vLLM's code; only the engine core is scripted:
    - `server.base_url` (`http://127.0.0.1:P/v1`) for the OpenAI SDK / the agent, `server.url` for /health,
      /metrics, /tokenize ...; the model folder is served under its path (`/v1/models` root) unless you pass
      `--served-model-name NAME`. `--conformance-model qwen3` (the default with `--reasoning-parser qwen3`)
      serves the Qwen3 tokenizer and template instead of Qwen2.5's.
    - `server.script(Reply(...) | "raw text", ...)`: the next replies, FIFO, as raw model text (hermes
      `<tool_call>` blocks, `<think>` ...), with `error_after_tokens`, `stall_after_tokens`, `delay`.
      Unscripted requests are answered by graph.demo.model.default_reply over the decoded prompt.
    - `server.stats()`: requests (decoded prompt, max_tokens, output token ids, finish) and aborts;
      `server.wait_stats(predicate)` polls it.
    The server is started once per distinct flag tuple for the whole session (tests share it) and is reset
    (script queue, requests, aborts) on every call. Without the vLLM venv the test is skipped, or fails
    when WORK_AGENT_REQUIRE_SYSTEM_TOOLS=1.
    """

    def start(*flags: str) -> RealVllm:
        server = real_vllm_pool.get(tuple(flags))
        server.reset()
        return server

    return start
