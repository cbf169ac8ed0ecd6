"""`python -m tests.conformance.vllm_app --port P [vllm serve flags]` (inside the vLLM venv, repo on PYTHONPATH)."""

from tests.conformance.vllm_app.serve import main

if __name__ == "__main__":
    main()
