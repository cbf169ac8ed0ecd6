"""Start vLLM's own OpenAI server (flags, config, AsyncLLM, app) on a scripted engine core, bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sys
from argparse import Namespace
from typing import Any

from tests.conformance.vllm_app.model_folder import VARIANTS, ensure_model_folder

HOST = "127.0.0.1"
# Our one flag of our own (removed before vLLM parses the rest): which weight-free model folder to serve.
MODEL_FLAG = "--conformance-model"
# The reasoning parsers that need Qwen3's tokens (<think> = 151667, </think> = 151668).
QWEN3_REASONING = {"qwen3", "deepseek_r1"}
# A CPU config, a local model folder (no Hugging Face lookups) and no usage reports home.
QUIET_ENV = {"VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
ONLY_LOCALHOST = "this test server binds to 127.0.0.1 only, not --host {host}: drop --host"
ONE_PROCESS = (
    "this test server is one API server process: drop --headless, --api-server-count, --data-parallel-size and --grpc"
)
BAD_MODEL_FLAG = f"{MODEL_FLAG} needs one of: {', '.join(VARIANTS)}"


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.conformance.vllm_app --port P [vllm serve flags]`: vLLM's own `vllm serve` CLI, then serve."""
    argv = list(sys.argv[1:] if argv is None else argv)
    variant, argv = _take_variant(argv)
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if not _flag_given(argv, "--model"):
        argv = [str(ensure_model_folder(variant)), *argv]
    from vllm.entrypoints.cli import main as vllm_cli
    from vllm.entrypoints.cli.serve import ServeSubcommand

    # vllm/entrypoints/cli/main.py builds the parser, configures logging, validates, copies model_tag into
    # model and then calls ServeSubcommand.cmd: ours starts the scripted-core server instead of an engine.
    ServeSubcommand.cmd = staticmethod(_serve)  # type: ignore[method-assign]
    sys.argv = ["vllm", "serve", *argv]
    vllm_cli.main()


def _serve(args: Namespace) -> None:
    """ServeSubcommand.cmd for one API server process on 127.0.0.1."""
    import uvloop

    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag
    if args.host not in (None, "", HOST):
        raise SystemExit(ONLY_LOCALHOST.format(host=args.host))
    if args.headless or (args.api_server_count or 1) > 1 or args.data_parallel_size > 1 or getattr(args, "grpc", False):
        raise SystemExit(ONE_PROCESS)
    args.host = HOST
    args.api_server_count = None
    family = "qwen3_coder" if args.tool_call_parser == "qwen3_coder" else "qwen2.5"
    uvloop.run(_run_server(args, family=family))


def _take_variant(argv: list[str]) -> tuple[str, list[str]]:
    """Remove `--conformance-model X`; without it, qwen3 when a Qwen3 reasoning parser is asked for."""
    rest: list[str] = []
    chosen: str | None = None
    items = iter(argv)
    for arg in items:
        if arg == MODEL_FLAG:
            chosen = next(items, None)
            if chosen not in VARIANTS:
                raise SystemExit(BAD_MODEL_FLAG)
        elif arg.startswith(MODEL_FLAG + "="):
            chosen = arg.split("=", 1)[1]
            if chosen not in VARIANTS:
                raise SystemExit(BAD_MODEL_FLAG)
        else:
            rest.append(arg)
    if chosen is None:
        chosen = "qwen3" if _flag_value(rest, "--reasoning-parser") in QWEN3_REASONING else "qwen2.5"
    return chosen, rest


def _key(arg: str) -> str:
    """A flag's name as vLLM reads it: underscores and dashes are interchangeable."""
    return arg.split("=", 1)[0].replace("_", "-") if arg.startswith("--") else arg


def _flag_given(argv: list[str], flag: str) -> bool:
    return any(_key(a) == flag for a in argv)


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if _key(arg) == flag:
            return arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else None)
    return None


async def _run_server(args: Namespace, family: str) -> None:
    """vLLM's run_server / build_async_engine_client / build_and_serve, with the engine core replaced."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.common.cli_args import init_parser_plugin, propagate_flash_late_interaction
    from vllm.entrypoints.launchers.launcher import setup_server
    from vllm.usage.usage_lib import UsageContext
    from vllm.utils.system_utils import decorate_logs

    from tests.conformance.vllm_app.core import ScriptedEngineCore

    decorate_logs("APIServer", skip_if_decorated=True)

    def interrupt_init(*_: object) -> None:
        raise KeyboardInterrupt("terminated")

    signal.signal(signal.SIGTERM, interrupt_init)
    listen_address, sock = setup_server(args, reuse_port=False)
    try:
        init_parser_plugin(args)
        engine_args = AsyncEngineArgs.from_cli_args(args)
        propagate_flash_late_interaction(args, engine_args)
        vllm_config = engine_args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
        core = ScriptedEngineCore(parser_active=bool(args.enable_auto_tool_choice), family=family)
        engine = _async_llm(vllm_config, core, engine_args)
        try:
            await engine.reset_mm_cache()
            shutdown = await _build_and_serve(engine, core, listen_address, sock, args)
        finally:
            engine.shutdown(timeout=vllm_config.shutdown_timeout)
        await shutdown
    finally:
        sock.close()


def _async_llm(vllm_config: Any, core: Any, engine_args: Any) -> Any:
    """AsyncLLM exactly as vLLM builds it, except that its engine-core client is `core`."""
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM
    from vllm.v1.engine.core_client import EngineCoreClient

    def make_client(*_args: Any, **kwargs: Any) -> Any:
        core.attach(kwargs["renderer"].tokenizer, vllm_config.model_config.max_model_len)
        return core

    EngineCoreClient.make_async_mp_client = staticmethod(make_client)  # type: ignore[method-assign]
    return AsyncLLM(
        vllm_config,
        executor_class=object,
        log_stats=not engine_args.disable_log_stats,
        usage_context=UsageContext.OPENAI_API_SERVER,
        log_requests=False,
        aggregate_engine_logging=engine_args.aggregate_engine_logging,
    )


async def _build_and_serve(engine: Any, core: Any, listen_address: str, sock: Any, args: Namespace) -> Any:
    """vllm/entrypoints/launchers/api_server/entry.build_and_serve, plus the control routes before serving."""
    import vllm.envs as envs
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state
    from vllm.entrypoints.launchers.app import build_app
    from vllm.entrypoints.launchers.launcher import serve_http
    from vllm.entrypoints.launchers.utils.server_utils import get_uvicorn_log_config
    from vllm.logger import init_logger

    from tests.conformance.vllm_app.control import add_control_routes

    logger = init_logger("vllm.entrypoints.launchers.api_server.entry")
    uvicorn_kwargs: dict[str, Any] = {}
    log_config = get_uvicorn_log_config(args)
    if log_config is not None:
        uvicorn_kwargs["log_config"] = log_config
    tasks = await engine.get_supported_tasks()
    logger.info("Supported tasks: %s", tasks)
    app = build_app(args, tasks, engine.model_config)
    await init_app_state(engine, app.state, args, tasks)
    add_control_routes(app, core)
    logger.info("Starting vLLM server on %s", listen_address)
    return await serve_http(
        app,
        sock=sock,
        enable_ssl_refresh=args.enable_ssl_refresh,
        host=args.host,
        port=args.port,
        log_level=args.uvicorn_log_level,
        access_log=not args.disable_uvicorn_access_log,
        timeout_keep_alive=envs.VLLM_HTTP_TIMEOUT_KEEP_ALIVE,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
        ssl_ca_certs=args.ssl_ca_certs,
        ssl_cert_reqs=args.ssl_cert_reqs,
        ssl_ciphers=args.ssl_ciphers,
        h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
        h11_max_header_count=args.h11_max_header_count,
        **uvicorn_kwargs,
    )
