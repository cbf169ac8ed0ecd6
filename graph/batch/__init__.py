"""Batch runs: many questions on one graph, a JSONL row each, and their reports."""
