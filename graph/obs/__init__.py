"""Observability: Prometheus metrics and logs, both derived from the trace records."""
