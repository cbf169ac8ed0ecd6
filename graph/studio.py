"""The graph LangGraph Studio loads (`langgraph.json`): built from env/.env, no checkpointer of ours."""

from graph.graph import build_graph

graph = build_graph()
