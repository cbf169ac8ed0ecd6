"""The Gradio web UI (filled in by the UI issue); nothing heavy is imported here."""
