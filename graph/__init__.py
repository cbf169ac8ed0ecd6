"""The Work Agent: a LangGraph plan → call_tool → observe → answer loop on a vLLM endpoint.

Kept import-free so `python -m graph.cli` starts fast; import `graph.graph.build_graph` directly.
"""
