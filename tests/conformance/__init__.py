"""Conformance tests against the real vLLM OpenAI server with a scripted engine core."""
