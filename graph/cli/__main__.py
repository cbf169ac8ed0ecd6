"""`python -m graph.cli`: the same program as `work-agent`."""

from graph.cli import main

main()
