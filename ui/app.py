"""The Gradio web UI: `python -m ui.app` (or `work-agent-ui`), then open http://127.0.0.1:7860."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from configs.settings import ConfigError, Settings, load_settings
from graph.errors import AgentError
from graph.obs.logs import setup_logging

# Gradio, plotly, langgraph and the model client are imported where the page is built and served, so that
# `--help` and a bad option answer at once (tests/test_startup.py).
if TYPE_CHECKING:
    import gradio as gr

    from ui.backend import Backend, Session
    from ui.handlers import Handlers

EXAMPLES = [
    "查询北京的天气",
    "What time is it in Tokyo, and what's the weather there?",
    "北京现在几点？",
    "What is (17 * 23) ^ 2?",
]
CSS = """
#status {min-height: 2.5em}
#demo-label {background: #fff3cd; border-radius: 6px; padding: 4px 10px}
#tool-status p {color: #8a4b00; margin: 2px 0}
#approval {border: 2px solid #f0ad4e; border-radius: 8px}
#approval-error p {color: #b00020; font-weight: 600}
"""


def build_app(backend: Backend) -> gr.Blocks:
    """The whole page, wired to the handlers."""
    import gradio as gr

    from tools import TOOLS
    from ui.api import register_api
    from ui.approval import Kind
    from ui.backend import Session
    from ui.handlers import Handlers
    from ui.tool_settings import POLICIES
    from ui.trace_view import steps_table, timeline_figure

    h = Handlers(backend)
    settings = backend.settings
    with gr.Blocks(title="Work Agent") as app:
        session = gr.State(Session(shown_tools=[t.name for t in TOOLS]))  # deep-copied for each browser tab
        owner = gr.BrowserState("", storage_key="work-agent-owner")
        last_thread = gr.BrowserState("", storage_key="work-agent-thread")  # reopened if it waits for approval
        thread_box = gr.State("")

        with gr.Sidebar(open=True):
            gr.Markdown("### Conversations")
            new_btn = gr.Button("➕ New conversation", variant="secondary")
            conversations = gr.Radio(label="Past conversations", choices=[], elem_id="conversations")
            with gr.Accordion("Rename · delete · open by id", open=False):
                title_box = gr.Textbox(label="New title", max_lines=1)
                rename_btn = gr.Button("Rename")
                delete_btn = gr.Button("🗑️ Delete this conversation", variant="stop")
                open_box = gr.Textbox(label="Thread id (e.g. from `work-agent run --thread`)", max_lines=1)
                open_btn = gr.Button("Open")

        gr.Markdown("## Work Agent")
        if backend.demo_label:
            gr.Markdown(f"**{backend.demo_label}**", elem_id="demo-label")
        with gr.Row():
            status = gr.Markdown("Checking the endpoint…", elem_id="status")
            status_btn = gr.Button("↻ Check endpoint", size="sm", scale=0)
        tool_status = gr.Markdown("", elem_id="tool-status")  # a tools module or MCP server that is unavailable
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    height=560,
                    editable="user",
                    buttons=["copy", "copy_all"],
                    placeholder="Ask about the time, the weather, or some arithmetic — in English or 中文.",
                    elem_id="chatbot",
                )
                with gr.Column(visible=False, elem_id="approval", variant="panel") as approval_box:
                    approval_md = gr.Markdown(elem_id="approval-text")
                    call_pick = gr.Dropdown(label="Call", choices=[], visible=False, elem_id="approval-call")
                    args_code = gr.Code(
                        label="Arguments (JSON): change them, then press Edit & run",
                        language="json",
                        interactive=True,
                        lines=3,
                        max_lines=16,
                        elem_id="approval-args",
                    )
                    reason_box = gr.Textbox(
                        label="Reason (optional): the model reads it with a Reject",
                        max_lines=2,
                        elem_id="approval-reason",
                    )
                    allow_box = gr.Checkbox(
                        label="Allow this tool for the rest of this conversation (Approve)", elem_id="approval-allow"
                    )
                    approval_err = gr.Markdown(elem_id="approval-error")
                    with gr.Row():
                        approve_btn = gr.Button("✅ Approve", variant="primary", elem_id="approve")
                        edit_btn = gr.Button("✏️ Edit & run", elem_id="edit-call")
                        reject_btn = gr.Button("🚫 Reject", variant="stop", elem_id="reject")
                with gr.Row():
                    textbox = gr.Textbox(
                        placeholder="Ask a question…", show_label=False, scale=6, submit_btn=True, elem_id="question"
                    )
                    stop_btn = gr.Button("⏹ Stop", variant="stop", scale=1, elem_id="stop")
                gr.Examples(EXAMPLES, inputs=[textbox], label="Examples")
            with gr.Column(scale=2):
                with gr.Accordion("Settings (apply to the next turn)", open=False):
                    base_url = gr.Textbox(label="Endpoint URL", value=settings.openai_api_base, max_lines=1)
                    with gr.Row():
                        model = gr.Dropdown(label="Model", choices=[], allow_custom_value=True, scale=4)
                        models_btn = gr.Button("↻", size="sm", scale=0)
                    temperature = gr.Slider(0, 2, value=settings.agent_temperature, step=0.05, label="Temperature")
                    max_tokens = gr.Number(settings.agent_max_tokens, label="Max tokens", precision=0, minimum=1)
                    max_steps = gr.Number(
                        settings.agent_max_steps, label="Max steps", precision=0, minimum=1, maximum=100
                    )
                    thinking = gr.Radio(
                        ["default", "on", "off"],
                        value={None: "default", True: "on", False: "off"}[settings.agent_thinking],
                        label="Thinking (thinking models such as Qwen3; default: AGENT_THINKING, else the model's)",
                        elem_id="thinking",
                    )
                    servers = gr.CheckboxGroup(
                        [], label="MCP servers (untick one to leave its tools out)", visible=False, elem_id="servers"
                    )
                    tools = gr.CheckboxGroup(
                        [t.name for t in TOOLS], value=[t.name for t in TOOLS], label="Enabled tools", elem_id="tools"
                    )
                    with gr.Row():
                        policy_tool = gr.Dropdown(
                            label="Approval for tool", choices=[t.name for t in TOOLS], scale=3, elem_id="policy-tool"
                        )
                        policy_pick = gr.Radio(
                            POLICIES, value="default", label="Policy", scale=4, elem_id="policy-pick"
                        )
                    tools_table = gr.Markdown(elem_id="tools-table")
                with gr.Accordion("Trace", open=True):
                    turn_pick = gr.Dropdown(label="Turn", choices=[], interactive=True)
                    plot = gr.Plot(timeline_figure([]), label="Timeline")
                    totals = gr.Markdown("No turns yet.")
                    table = gr.Dataframe(headers=steps_table([])[0], label="Steps", interactive=False, wrap=True)
                    download = gr.DownloadButton("⬇ Download trace (JSON)", value=None)

        knobs = [base_url, model, temperature, max_tokens, max_steps, tools]
        trace = [turn_pick, plot, table, totals, download]
        panel = [approval_box, approval_md, call_pick, args_code, reason_box, allow_box, approval_err]
        run_outputs = [chatbot, textbox, conversations, thread_box, *trace, *panel]
        tool_outputs = [tools, servers, tool_status, policy_tool, tools_table]
        refresh_tools: dict[str, Any] = {
            "fn": h.tool_settings,
            "inputs": [session, tools],
            "outputs": tool_outputs,
            "show_progress": "hidden",
            "api_visibility": "private",
        }

        app.load(
            h.on_load,
            [owner, last_thread, session],
            [owner, conversations, status, model, chatbot, thread_box, *trace, *panel],
            api_visibility="private",
        )
        app.load(**refresh_tools)  # starts the MCP servers in the background of the page's first load
        thread_box.change(lambda t: t, [thread_box], [last_thread], api_visibility="private", show_progress="hidden")
        textbox.submit(h.run, [textbox, session, owner, *knobs], run_outputs, api_visibility="private").then(
            **refresh_tools
        )
        chatbot.retry(h.retry, [session, owner, *knobs], run_outputs, api_visibility="private").then(**refresh_tools)
        chatbot.edit(h.edit, [session, owner, *knobs], run_outputs, api_visibility="private").then(**refresh_tools)
        decision_inputs = [call_pick, args_code, reason_box, allow_box, session, owner, *knobs]
        buttons: list[tuple[gr.Button, Kind]] = [(approve_btn, "approve"), (edit_btn, "edit"), (reject_btn, "reject")]
        for button, kind in buttons:
            button.click(h.decision_handler(kind), decision_inputs, run_outputs, api_visibility="private").then(
                **refresh_tools
            )
        call_pick.input(
            h.pick_call,
            [call_pick, session],
            [args_code, reason_box, allow_box, approval_err],
            api_visibility="private",
        )
        thinking.input(h.set_thinking, [thinking, session], [], api_visibility="private")
        servers.input(h.set_servers, [servers, session, tools], [tools_table], api_visibility="private")
        tools.input(h.tool_table, [session, tools], [tools_table], api_visibility="private")
        policy_tool.input(h.policy_of, [policy_tool, session], [policy_pick], api_visibility="private")
        policy_pick.input(
            h.set_policy, [policy_tool, policy_pick, session, tools], [tools_table], api_visibility="private"
        )
        # Stop cancels the running turn itself, whose event then ends on its own (no `cancels=`: h.stop says why).
        stop_btn.click(h.stop, [session], None, api_visibility="private", concurrency_limit=None)
        chatbot.undo(h.undo, [session, base_url], [chatbot, textbox, *trace, *panel], api_visibility="private")
        status_btn.click(h.refresh_status, [base_url], [status, model], api_visibility="private")
        models_btn.click(h.model_choices, [base_url], [model], api_visibility="private")
        new_btn.click(
            h.new_conversation,
            [session],
            [chatbot, thread_box, conversations, *trace, *panel],
            api_visibility="private",
        )
        conversations.input(
            h.open_thread,
            [conversations, session, base_url, max_steps],
            [chatbot, thread_box, *trace, *panel],
            api_visibility="private",
        )
        open_btn.click(
            h.claim_thread,
            [open_box, owner, session, base_url, max_steps],
            [conversations, chatbot, thread_box, *trace, *panel],
            api_visibility="private",
        )
        rename_btn.click(h.rename, [title_box, owner, session], [conversations], api_visibility="private")
        delete_btn.click(
            h.delete, [owner, session], [conversations, chatbot, thread_box, *trace, *panel], api_visibility="private"
        )
        turn_pick.input(_select_turn(h), [turn_pick, session, base_url], trace, api_visibility="private")
        register_api(backend)
    return app


def _select_turn(h: Handlers) -> Any:
    from ui.handlers import trace_outputs

    async def select(turn: int | None, session: Session, base_url: str | None) -> tuple[Any, ...]:
        turns = await h.last_turns(session, base_url)
        return trace_outputs(turns, session.thread_id, turn)

    return select


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the app on this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def endpoint(settings: Settings, demo: bool) -> Iterator[tuple[Settings, str | None]]:
    """The settings to serve with; `--demo` runs the scripted vLLM-compatible server alongside."""
    if not demo:
        yield settings, None
        return
    from unittest import mock

    from configs.settings import get_settings
    from graph.demo.server import DemoConfig, DemoServer

    with DemoServer(DemoConfig(token_delay=0.03)) as server:
        demo_settings = Settings(
            **{
                **settings.model_dump(),
                "openai_api_base": server.base_url,
                "agent_endpoints": [],
                "openai_api_key": "EMPTY",
                "agent_model": server.config.served_model_names[0],
                "weather_geocoding_url": server.geocoding_url,
                "weather_forecast_url": server.forecast_url,
                "weather_api_key": None,
            }
        )
        # The tools read the process-wide settings when called: the weather URLs go there too, for the demo only.
        with mock.patch.dict("os.environ", server.weather_env()):
            get_settings.cache_clear()
            try:
                yield (
                    demo_settings,
                    (
                        "demo model (scripted, no GPU): answers are canned, time and arithmetic "
                        "are real, the weather is demo data (演示数据)"
                    ),
                )
            finally:
                get_settings.cache_clear()


async def _check_threads(settings: Settings) -> None:
    """Open and close the checkpointer once (creates its tables; raises AgentError when it cannot)."""
    from graph.checkpoint import open_checkpointer

    async with open_checkpointer(settings):
        pass


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (0.0.0.0 = your network).")
@click.option("--port", default=7860, show_default=True, type=int, help="Port to serve on.")
@click.option(
    "--base-url",
    multiple=True,
    help="OpenAI-compatible endpoint (default OPENAI_API_BASE); repeat it for failover, tried in order.",
)
@click.option("--model", "-m", help="Served model name (default AGENT_MODEL, else the server's first).")
@click.option("--auth", help="Require a login, user:password (default UI_AUTH).")
@click.option("--share", is_flag=True, help="Also serve through a public gradio.live link (off by default).")
@click.option("--demo", is_flag=True, help="Run the scripted vLLM-compatible demo model in-process (no GPU).")
def main(
    host: str, port: int, base_url: tuple[str, ...], model: str | None, auth: str | None, share: bool, demo: bool
) -> None:
    """Serve the Work Agent web UI (and its Prometheus metrics at /metrics)."""
    try:
        settings = load_settings(openai_api_base=",".join(base_url) or None, agent_model=model, ui_auth=auth)
    except ConfigError as err:
        click.secho(f"Error: {err}", err=True, fg="red")
        sys.exit(2)
    setup_logging(settings)
    credentials = settings.ui_credentials()
    if not is_loopback(host) and not credentials:
        click.secho(
            f"WARNING: serving on {host}:{port} WITHOUT a login: anyone who can reach this machine can "
            "use your model server and read every conversation. Pass --auth user:password "
            "(or set UI_AUTH).",
            err=True,
            fg="red",
            bold=True,
        )
    from starlette.routing import Route  # the serving stack, now that the options are known to be good

    from graph.obs.metrics import metrics_asgi_app
    from ui.backend import Backend

    with endpoint(settings, demo) as (serve_settings, label):
        try:  # a thread store that cannot be opened stops the UI now, with one line, not at the first question
            asyncio.run(_check_threads(serve_settings))
        except AgentError as err:
            click.secho(f"Error: {err}", err=True, fg="red")
            sys.exit(err.exit_code)
        from tools.mcp import McpConfigError
        from tools.toolbox import shared_toolbox

        try:  # so is an MCP config file that is missing or invalid (its servers start with the first page)
            shared_toolbox(serve_settings)
        except McpConfigError as err:
            click.secho(f"Error: {err}", err=True, fg="red")
            sys.exit(2)
        backend = Backend(serve_settings, demo_label=label)
        app = build_app(backend)
        app.queue(default_concurrency_limit=settings.ui_concurrency_limit)
        click.secho(f"Work Agent UI on http://{host}:{port} · model server {serve_settings.openai_api_base}", err=True)
        # Prometheus scrapes /metrics on the UI's own server, outside Gradio's login (no user data in it).
        metrics_route = Route("/metrics", metrics_asgi_app(), include_in_schema=False)
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            auth=credentials or None,
            css=CSS,
            footer_links=["api"],
            show_error=True,
            app_kwargs={"routes": [metrics_route]},
        )


if __name__ == "__main__":
    main()
