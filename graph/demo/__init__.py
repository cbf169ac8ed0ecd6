"""The scripted vLLM 0.33-compatible server (tests and --demo); it imports nothing of the agent."""
