"""A small MCP server for the tests (stdio and streamable HTTP), with read-only, write, destructive and faulty tools."""
