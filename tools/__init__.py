"""Register the agent's tools: the one `TOOLS` list the graph binds to the model.

Add a tool in two steps:

1. Write one typed function in its own module, e.g. `tools/dictionary.py`. Its Google-style
   docstring is the prompt the model sees: the summary says what it does and when to use it,
   `Args:` describes each argument. Raise `ToolError` (tools/errors.py) with a message that
   says what to do next; keep the message texts as module-level constants::

       from langchain_core.tools import tool

       from tools.errors import ToolError

       NO_ENTRY = "no entry for {word!r}; check the spelling."


       @tool(parse_docstring=True)
       def define_word(word: str) -> str:
           \"\"\"Look up the meaning of an English word.

           Args:
               word: A single English word, e.g. 'serendipity'.
           \"\"\"
           ...

2. Add it to `TOOLS` below (import plus one list entry). Built-in tools only read, so they run without
   asking (`readOnlyHint`); a tool that writes or deletes belongs in your own module (tools/plugins.py),
   where it is asked about by default. Settings such as URLs, keys and
   timeouts come from `configs.get_settings()` at call time, never from `os.environ`.
"""

from langchain_core.tools import BaseTool

from tools.calculator import calculate
from tools.clock import get_current_time
from tools.errors import ToolError, handle_tool_error
from tools.weather import get_city_weather

TOOLS: list[BaseTool] = [get_current_time, get_city_weather, calculate]
for _tool in TOOLS:
    _tool.metadata = {**(_tool.metadata or {}), "source": "builtin", "readOnlyHint": True}
TOOLS_BY_NAME: dict[str, BaseTool] = {t.name: t for t in TOOLS}

__all__ = [
    "TOOLS",
    "TOOLS_BY_NAME",
    "ToolError",
    "calculate",
    "get_city_weather",
    "get_current_time",
    "handle_tool_error",
]
