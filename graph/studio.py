"""The graph LangGraph Studio loads (`langgraph.json`): from env/.env, no checkpointer of ours, one-line errors."""

from graph.graph import build_graph

# explain_errors: a run that fails on the model server ends with the CLI's one-line message
# ("Cannot reach the model server at ...") instead of a raw ConnectError.
graph = build_graph(explain_errors=True)
