"""A real vLLM 0.33 OpenAI server on a scripted engine core; runs in .venv-vllm (see ../README.md)."""
