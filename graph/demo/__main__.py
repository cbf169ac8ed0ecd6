"""`python -m graph.demo`: run the scripted vLLM-compatible server on its own."""

import sys

from graph.demo.server import main

sys.exit(main())
