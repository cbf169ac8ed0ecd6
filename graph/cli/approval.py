"""Approval on the terminal: the y/n/e/a prompt for paused tool calls, and the lines about denied or waiting calls."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from graph.errors import EXIT_USAGE, AgentError

QUESTION = "Run {name}? [y]es / [n]o / [e]dit / [a]lways (this conversation): "
ANSWERS = {
    "y": "yes",
    "yes": "yes",
    "n": "no",
    "no": "no",
    "e": "edit",
    "edit": "edit",
    "a": "always",
    "always": "always",
}
NOT_AN_ANSWER = (
    "Answer y (run it), n (do not run it), e (edit its arguments) or a (run it and stop asking in this conversation)."
)
REASON = "Why not? (optional, told to the model; Enter to skip): "
EDIT_LINE = "New arguments as one line of JSON (Enter keeps them): "
NOT_JSON = "Not valid JSON ({why}); the arguments were not changed."
NOT_AN_OBJECT = 'The arguments must be a JSON object, e.g. {{"title": "x"}}; got {kind}. They were not changed.'
ASK_NEEDS_A_TERMINAL = (
    "--approve ask needs a terminal to ask on (stdin is not one); pass --approve auto to run the tools that "
    "need approval, or --approve deny to refuse them."
)
DENIED = (
    "work-agent: not run: {names} {need} a person's approval, and {why}. To allow {them}, pass --approve auto, "
    'or add "approval": {{"{first}": "auto"}} to the MCP config ({config}).'
)
WHY_NO_TERMINAL = "this run has no terminal to ask on"
WHY_DENY = "--approve deny refuses {them}"
LEFT_WAITING = (
    "{calls} left waiting for approval on thread {thread}: decide with `work-agent repl --thread {thread}`; "
    "a new question on that thread skips {them}."
)
LEFT_WAITING_REPL = "{calls} left waiting: /approve to decide; a new question skips {them}."
DECISION_COLOURS = {"rejected": "yellow", "denied": "yellow", "superseded": "yellow"}


def approve_mode(choice: str | None) -> tuple[str, bool]:
    """The `--approve` mode and whether it was defaulted: ask in a terminal, else deny; `ask` needs a terminal."""
    if choice == "ask" and not sys.stdin.isatty():
        raise AgentError(ASK_NEEDS_A_TERMINAL, EXIT_USAGE)
    if choice is not None:
        return choice, False
    return ("ask" if sys.stdin.isatty() and sys.stdout.isatty() else "deny"), True


def read_line(prompt: str) -> str:
    """One line from stdin, the prompt on stderr (stdout keeps the answer); EOFError and Ctrl-C pass through."""
    click.secho(prompt, err=True, nl=False, bold=True)
    line = input()
    if sys.stdin.isatty() and "readline" in sys.modules:  # a y/n answer is no line for the repl's history
        import readline

        with contextlib.suppress(ValueError):
            if n := readline.get_current_history_length():
                readline.remove_history_item(n - 1)
    return line.strip()


def as_json(args: dict[str, Any], indent: int | None = None) -> str:
    return json.dumps(args, ensure_ascii=False, indent=indent)


def show_call(call: Any, info: dict[str, Any]) -> None:
    """The pending call: the tool, its server, and its arguments as JSON."""
    where = f" · MCP server {call.server}" if call.server else ""
    hint = " · marked destructive" if info.get("destructiveHint") else ""
    click.secho(f"⏸ {call.name}{where}{hint} wants to run with:", err=True, fg="magenta", bold=True)
    text = as_json(call.args)
    click.secho(f"  {as_json(call.args, 2) if len(text) > 72 else text}", err=True, fg="magenta")


def edit_args(args: dict[str, Any]) -> dict[str, Any] | None:
    """The edited arguments ($VISUAL / $EDITOR if set, else one line of JSON); None when unchanged or unusable."""
    if os.environ.get("VISUAL") or os.environ.get("EDITOR"):  # the terminal's convention, as git's
        text = click.edit(as_json(args, 2) + "\n", extension=".json")
        if text is None:
            return None
    else:
        text = read_line(EDIT_LINE)
        if not text:
            return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        click.secho(NOT_JSON.format(why=f"{err.msg} at column {err.colno}"), err=True, fg="yellow")
        return None
    if not isinstance(value, dict):
        click.secho(NOT_AN_OBJECT.format(kind=type(value).__name__), err=True, fg="yellow")
        return None
    return value


def decide_one(call: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Ask about one call until the answer is usable; its decision in the HITL format."""
    show_call(call, info)
    while True:
        answer = ANSWERS.get(read_line(QUESTION.format(name=call.name)).lower())
        if answer == "yes":
            return {"type": "approve"}
        if answer == "always":
            return {"type": "approve", "allow_for_thread": True}
        if answer == "no":
            reason = read_line(REASON)
            return {"type": "reject", "message": reason} if reason else {"type": "reject"}
        if answer == "edit":
            edited = edit_args(call.args)
            if edited is not None:
                click.secho(f"  will run with {as_json(edited)}", err=True, dim=True)
                return {"type": "edit", "edited_action": {"name": call.name, "args": edited}}
            continue
        click.secho(NOT_AN_ANSWER, err=True, fg="yellow")


def prompter(info: Callable[[str], dict[str, Any]]) -> Callable[[Any], dict[str, dict[str, Any]]]:
    """The function that asks about every call of a pause (`ApprovalRequested`) and returns {call id: decision}.

    EOFError and KeyboardInterrupt pass through: the calls stay waiting in the thread.
    """

    def decide(pending: Any) -> dict[str, dict[str, Any]]:
        if pending.error:
            click.secho(f"work-agent: {pending.error}", err=True, fg="yellow")
        decisions: dict[str, dict[str, Any]] = {}
        always: set[str] = set()
        for call in pending.calls:
            if call.name in always:  # "always" a moment ago covers the same tool's other calls of this step
                show_call(call, info(call.name))
                click.secho(f"  allowed: you answered always for {call.name}", err=True, dim=True)
                decisions[call.call_id] = {"type": "approve", "allow_for_thread": True}
                continue
            decisions[call.call_id] = decide_one(call, info(call.name))
            if decisions[call.call_id].get("allow_for_thread"):
                always.add(call.name)
        return decisions

    return decide


def _them(n: int) -> str:
    return "it" if n == 1 else "them"


def calls(n: int) -> str:
    return f"{n} tool call{'s' * (n != 1)}"


def denied_for_approval(steps: Sequence[Any], policy: Callable[[str], str]) -> list[str]:
    """The tools refused because they needed a person's approval (not the ones whose policy is deny)."""
    names = [
        s.name for s in steps if s.kind == "tool" and s.decision == "denied" and s.name and policy(s.name) == "ask"
    ]
    return list(dict.fromkeys(names))


def say_denied(names: Sequence[str], *, defaulted: bool, config: Any) -> None:
    """One line on stderr: which tools were refused for want of a person, and how to allow them."""
    if not names:
        return
    them = _them(len(names))
    why = WHY_NO_TERMINAL if defaulted else WHY_DENY.format(them=them)
    line = DENIED.format(
        names=", ".join(names),
        need="needs" if len(names) == 1 else "need",
        why=why,
        them=them,
        first=names[0],
        config=config,
    )
    click.secho(line, err=True, fg="yellow")


def say_waiting(pending: Any, thread_id: str, *, repl: bool) -> None:
    """Say that the calls were left undecided, and how to decide on them later."""
    n = len(pending.calls)
    template = LEFT_WAITING_REPL if repl else LEFT_WAITING
    text = template.format(calls=calls(n).capitalize(), thread=thread_id, them=_them(n))
    click.secho(f"({text})" if repl else f"work-agent: {text}", err=True, fg="yellow")
