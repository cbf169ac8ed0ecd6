"""Run the protocol-faithful fake vLLM 0.33 server in a background thread, or from the shell."""

from __future__ import annotations

import argparse
import signal
import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn

from graph.demo.chat import SUPPORTED_PARSERS, DemoConfig, FakeVllm, Reply
from graph.demo.hermes import qwen3_coder_call_text, tool_call_text
from graph.demo.protocol import VLLM_VERSION
from graph.demo.reasoning import SUPPORTED_REASONING_PARSERS

__all__ = ["DemoConfig", "DemoServer", "Reply", "main", "qwen3_coder_call_text", "tool_call_text"]

_START_TIMEOUT = 15.0


class _Uvicorn(uvicorn.Server):
    """uvicorn.Server that signals an Event once startup is over (successfully or not)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready.set()


class DemoServer:
    """A fake vLLM server on a real socket: `with DemoServer() as server: ... server.base_url`."""

    def __init__(self, config: DemoConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._fake = FakeVllm(config or DemoConfig())
        self.host = host
        self.port = port
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> DemoConfig:
        return self._fake.config

    @config.setter
    def config(self, value: DemoConfig) -> None:
        self._fake.config = value

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of every /v1/chat/completions request received, in order."""
        return self._fake.requests

    @property
    def models_listed(self) -> int:
        """GET /v1/models requests received (with a valid key, when one is required)."""
        return self._fake.models_listed

    @property
    def timings(self) -> list[dict[str, float]]:
        """Per generated reply: arrival, first token and end times (time.time()) and completion tokens."""
        return self._fake.timings

    @property
    def disconnects(self) -> int:
        """Responses whose client went away before the end."""
        return self._fake.disconnects

    @property
    def app(self) -> Any:
        """The ASGI app, for in-process use without a socket."""
        return self._fake.app

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def geocoding_url(self) -> str:
        """The offline Open-Meteo geocoding stand-in (for WEATHER_GEOCODING_URL)."""
        return f"{self.url}/open-meteo/v1/search"

    @property
    def forecast_url(self) -> str:
        """The offline Open-Meteo forecast stand-in (for WEATHER_FORECAST_URL)."""
        return f"{self.url}/open-meteo/v1/forecast"

    def weather_env(self) -> dict[str, str]:
        """Environment that points the weather tool at the offline stand-in (Open-Meteo, no key).

        WEATHER_API_KEY is blanked: with a key the tool would ask OpenWeatherMap, which has no stand-in.
        """
        return {
            "WEATHER_GEOCODING_URL": self.geocoding_url,
            "WEATHER_FORECAST_URL": self.forecast_url,
            "WEATHER_API_KEY": "",
        }

    def script(self, *replies: Reply | str) -> None:
        """Queue replies for the next chat requests (FIFO); a str means Reply(text=str)."""
        self._fake.script(*replies)

    def script_for(self, question: str, *replies: Reply | str) -> None:
        """Queue replies for requests whose latest user message contains `question` (FIFO, per question).

        They take precedence over `script`; when they run out, that question gets the usual replies.
        Lets concurrent clients (batch runs) fail or succeed by question, whatever the arrival order.
        """
        self._fake.script_for(question, *replies)

    def reset(self) -> None:
        """Clear the reply queues, the recorded requests and the request and disconnect counts."""
        self._fake.reset()

    def start(self) -> DemoServer:
        """Serve in a background thread; return once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("DemoServer is already running")
        _check_config(self.config)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        config = uvicorn.Config(
            self._fake.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
        )
        self._server = _Uvicorn(config, ready)
        self._fake.stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"demo-vllm-{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or not self._server.started:
            self.stop()
            sock.close()
            raise RuntimeError(f"demo server did not start on {self.url}")
        return self

    def stop(self) -> None:
        """Stop serving: end hanging replies, let uvicorn close, join the thread."""
        self._fake.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def wait(self) -> None:
        """Block until the server thread ends (Ctrl-C still interrupts)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _check_config(config: DemoConfig) -> None:
    """Refuse what vLLM refuses at startup, and parsers this fake cannot simulate."""
    if config.enable_auto_tool_choice and config.tool_call_parser is None:
        raise ValueError("Error: --enable-auto-tool-choice requires --tool-call-parser")
    if config.tool_call_parser not in SUPPORTED_PARSERS:
        raise ValueError(f"the demo server simulates only the hermes tool parser, not {config.tool_call_parser!r}")
    if config.model_family not in ("qwen2.5", "qwen3_coder"):
        raise ValueError(f"unknown model family {config.model_family!r}")
    if not config.served_model_names:
        raise ValueError("served_model_names must not be empty")
    if config.reasoning_parser not in SUPPORTED_REASONING_PARSERS:
        raise ValueError(f"the demo server simulates only the qwen3 reasoning parser, not {config.reasoning_parser!r}")
    if config.stream_interval < 1:
        raise ValueError(f"stream_interval must be at least 1, got {config.stream_interval}")


NOT_POSITIVE = "must be a whole number of at least 1, got {value!r}"


def _at_least_one(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(NOT_POSITIVE.format(value=value))
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graph.demo",
        description=f"Fake vLLM {VLLM_VERSION} OpenAI-compatible server, scripted model, no GPU.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--served-model-name",
        nargs="+",
        dest="served_model_names",
        default=["Qwen/Qwen2.5-7B-Instruct"],
        metavar="NAME",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="the model path vLLM would load (/v1/models `root`; default: the first served name)",
    )
    parser.add_argument(
        "--reasoning-parser",
        choices=["qwen3"],
        default=None,
        help="split <think>...</think> into `reasoning`, as vLLM's qwen3 reasoning parser",
    )
    parser.add_argument(
        "--stream-interval",
        type=_at_least_one,
        default=1,
        help="tokens per streamed chunk after the first (vLLM's --stream-interval)",
    )
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--no-tool-parser", action="store_true", help="act as if started without --enable-auto-tool-choice"
    )
    parser.add_argument("--model-family", choices=["qwen2.5", "qwen3_coder"], default="qwen2.5")
    parser.add_argument("--max-model-len", type=int, default=32768)
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before the first token (simulated prefill)"
    )
    parser.add_argument(
        "--token-delay", type=float, default=0.02, help="seconds between streamed tokens (default 0.02)"
    )
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C (or SIGTERM)."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    config = DemoConfig(
        served_model_names=args.served_model_names,
        api_key=args.api_key,
        enable_auto_tool_choice=not args.no_tool_parser,
        tool_call_parser=None if args.no_tool_parser else "hermes",
        model_family=args.model_family,
        max_model_len=args.max_model_len,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        model=args.model,
        reasoning_parser=args.reasoning_parser,
        stream_interval=args.stream_interval,
    )
    server = DemoServer(config, host=args.host, port=args.port).start()
    try:
        print(
            f"Fake vLLM {VLLM_VERSION} serving {', '.join(config.served_model_names)} at "
            f"{server.url} (OpenAI base URL {server.base_url}). Press Ctrl-C to stop.",
            flush=True,
        )
        print(
            f"Offline weather (demo data): WEATHER_GEOCODING_URL={server.geocoding_url} "
            f"WEATHER_FORECAST_URL={server.forecast_url}",
            flush=True,
        )
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
