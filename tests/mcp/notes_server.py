"""A notes MCP server for the tests: `python -m tests.mcp.notes_server [--http PORT] [--fail-start]`.

Tools: read_note (read-only), write_note (no hints: ask), delete_note (destructive), and faults: fail
(an MCP error result), crash (the process exits mid-call), hang (never answers), garbage (writes bytes that
are not JSON-RPC to stdout), echo_env (the value of an environment variable, to test `${VAR}`) and
echo_header (a request header, over HTTP). `--reject-token` exits at start saying the token (NOTES_TOKEN) was
refused, the way a server with a bad credential often does: its stderr line carries the secret.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations

NOTES = Path(os.environ.get("NOTES_DIR", ".")) / "notes"


def build(name: str = "notes", port: int = 0) -> FastMCP:
    mcp = FastMCP(name, host="127.0.0.1", port=port, log_level="WARNING")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def read_note(title: str) -> str:
        """Read the note with this title."""
        path = NOTES / f"{title}.txt"
        return path.read_text(encoding="utf-8") if path.exists() else f"no note called {title!r}"

    @mcp.tool()
    def write_note(title: str, text: str) -> str:
        """Write (or overwrite) the note with this title."""
        NOTES.mkdir(parents=True, exist_ok=True)
        (NOTES / f"{title}.txt").write_text(text, encoding="utf-8")
        return f"saved {title!r} ({len(text)} characters)"

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True, readOnlyHint=False))
    def delete_note(title: str) -> str:
        """Delete the note with this title."""
        path = NOTES / f"{title}.txt"
        if not path.exists():
            raise ValueError(f"no note called {title!r}")
        path.unlink()
        return f"deleted {title!r}"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def fail(reason: str = "broken") -> str:
        """Always fails (an MCP error result)."""
        raise RuntimeError(f"it failed: {reason}")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def crash() -> str:
        """Exit the server process in the middle of the call."""
        os._exit(3)

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def hang() -> str:
        """Never answer."""
        await asyncio.Event().wait()
        return "unreachable"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def garbage() -> str:
        """Write bytes that are not JSON-RPC to stdout instead of answering properly."""
        sys.stdout.write("this is not json-rpc\n{{{\n")
        sys.stdout.flush()
        return "ok"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def echo_env(name: str) -> str:
        """The value of an environment variable of the server process."""
        return os.environ.get(name, "<unset>")

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def echo_header(name: str, ctx: Context) -> str:
        """The value of a header of this HTTP request."""
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        return headers.get(name, "<unset>") if headers is not None else "<not http>"

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve streamable HTTP on this port")
    parser.add_argument("--name", default="notes")
    parser.add_argument("--fail-start", action="store_true", help="exit before the handshake, saying why")
    parser.add_argument("--hang-start", action="store_true", help="never answer the handshake")
    parser.add_argument("--reject-token", action="store_true", help="exit at start, quoting NOTES_TOKEN")
    args = parser.parse_args()
    if args.reject_token:
        print(f"notes: the token {os.environ.get('NOTES_TOKEN', '')} was refused (401)", file=sys.stderr)
        raise SystemExit(2)
    if args.fail_start:
        print("notes: cannot open the notes database (permission denied)", file=sys.stderr)
        raise SystemExit(2)
    if args.hang_start:
        import time

        time.sleep(3600)
    server = build(args.name, args.http or 0)
    if args.http:
        server.run("streamable-http")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
