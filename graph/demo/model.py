"""Script the demo "brain": turn a chat request into the raw text Qwen2.5 would generate."""

from __future__ import annotations

import json
import re
from typing import Any

from graph.demo.arith import expression
from graph.demo.cities import find_city
from graph.demo.hermes import qwen3_coder_call_text, tool_call_text

Call = tuple[str, dict[str, Any]]

_TIME_EN = re.compile(r"\b(?:time|clock)\b", re.I)
_TIME_ZH = ("时间", "几点")
_WEATHER_EN = re.compile(r"\b(?:weather|temperature|forecast)\b", re.I)
_WEATHER_ZH = ("天气", "气温", "温度")
_CALC_WORD = re.compile(r"\b(?:calculate|compute)\b|计算", re.I)
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_CAPITALIZED_PLACE = re.compile(r"\b(?:in|at|for)\s+([A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*)")

_LABELS = {
    "get_current_time": ("Current time", "当前时间"),
    "get_city_weather": ("Weather", "天气"),
    "calculate": ("Result", "计算结果"),
}
GREETING_EN = (
    "Hi! I'm the Work Agent demo model, a scripted stand-in for Qwen2.5 that needs no GPU. "
    'I can tell the time, check the weather and do arithmetic. Try "What\'s the weather in Tokyo?"'
)
GREETING_ZH = (
    "你好！我是 Work Agent 的演示模型，一个不需要 GPU 的 Qwen2.5 脚本替身。"
    "我可以查询时间、天气，也能做算术。试试问：“东京天气怎么样？”"
)
NO_TOOL_EN = "Sorry, I can't look that up right now: the tool I would need is not available."
NO_TOOL_ZH = "抱歉，我现在无法查询：需要的工具不可用。"
WHICH_CITY_EN = "Which city would you like the weather for?"
WHICH_CITY_ZH = "请问您想查询哪个城市的天气？"


def text_of(content: Any) -> str:
    """The text of a message's content: a string, None, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def is_chinese(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def default_reply(request: dict[str, Any], *, family: str = "qwen2.5", parser_active: bool = True) -> str:
    """Raw model output for `request` (an OpenAI chat body), as the scripted model writes it."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    tools = [t for t in request.get("tools") or [] if isinstance(t, dict)]
    tool_choice = request.get("tool_choice")
    if messages and messages[-1].get("role") == "tool":
        return _answer_from_results(messages)
    question = _last_user_text(messages)
    zh = is_chinese(question)
    offered = {t.get("function", {}).get("name"): t for t in tools} if tool_choice != "none" else {}
    calls, missing_city, needed = _pick_calls(question, messages, offered)
    if isinstance(tool_choice, dict):
        wanted = str(tool_choice.get("function", {}).get("name", ""))
        calls = [c for c in calls if c[0] == wanted][:1] or [_guess_call(wanted, question, offered)]
    elif tool_choice == "required" and not calls and offered:
        calls = [_guess_call(next(iter(offered)), question, offered)]
    if calls:
        # Required/named choices, parallel_tool_calls=false and strict tools run under a
        # grammar that forces the hermes envelope, whatever format the model family prefers.
        forced = parser_active and (
            tool_choice == "required"
            or isinstance(tool_choice, dict)
            or request.get("parallel_tool_calls") is False
            or any(t.get("function", {}).get("strict") for t in tools)
        )
        write = qwen3_coder_call_text if family == "qwen3_coder" and not forced else tool_call_text
        return "\n".join(write(name, args) for name, args in calls)
    if missing_city:
        return WHICH_CITY_ZH if zh else WHICH_CITY_EN
    if needed:
        return NO_TOOL_ZH if zh else NO_TOOL_EN
    return GREETING_ZH if zh else GREETING_EN


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _city_in(question: str, messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(city as written, IANA zone) from the question, else from earlier user turns."""
    earlier = [text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"]
    for text in [question, *earlier]:
        found = find_city(text)
        if found:
            return found[0], found[1].timezone
    place = _CAPITALIZED_PLACE.search(question)
    return (place.group(1), "UTC") if place else None


def _pick_calls(
    question: str, messages: list[dict[str, Any]], offered: dict[str, Any]
) -> tuple[list[Call], bool, bool]:
    """Tool calls the question asks for, whether a weather city is missing, and whether any
    tool was needed at all."""
    lowered = question.lower()
    weather = bool(_WEATHER_EN.search(question)) or any(w in question for w in _WEATHER_ZH)
    # "现在" (now) only means "what time is it" when the question is not about the weather.
    time = (
        bool(_TIME_EN.search(question)) or any(w in question for w in _TIME_ZH) or ("现在" in question and not weather)
    )
    found = expression(question)
    calc = bool(found) or bool(_CALC_WORD.search(lowered))
    city = _city_in(question, messages)
    calls: list[Call] = []
    if time and "get_current_time" in offered:
        calls.append(_fit("get_current_time", {"timezone": city[1] if city else "UTC"}, offered))
    if weather and "get_city_weather" in offered and city:
        calls.append(_fit("get_city_weather", {"city": city[0]}, offered))
    if calc and "calculate" in offered:
        text = found or _CALC_WORD.split(question, maxsplit=1)[-1].strip(" ?？:：")
        calls.append(_fit("calculate", {"expression": text}, offered))
    missing_city = weather and city is None and "get_city_weather" in offered
    return calls, missing_city, time or weather or calc


def _guess_call(name: str, question: str, offered: dict[str, Any]) -> Call:
    """Arguments for a call the request forces, guessed from the question or the schema."""
    found = find_city(question)
    defaults: dict[str, dict[str, Any]] = {
        "get_current_time": {"timezone": found[1].timezone if found else "UTC"},
        "get_city_weather": {"city": found[0] if found else "Beijing"},
        "calculate": {"expression": expression(question) or "1+1"},
    }
    if name in defaults:
        return _fit(name, defaults[name], offered)
    params = offered.get(name, {}).get("function", {}).get("parameters") or {}
    props: dict[str, Any] = params.get("properties") or {}
    args: dict[str, Any] = {}
    for key in params.get("required") or []:
        kind = (props.get(key) or {}).get("type")
        args[key] = 0 if kind in ("number", "integer") else False if kind == "boolean" else question
    return name, args


def _fit(name: str, args: dict[str, Any], offered: dict[str, Any]) -> Call:
    """Rename our one argument to the offered schema's own property if it is spelled differently."""
    params = offered.get(name, {}).get("function", {}).get("parameters") or {}
    props = list((params.get("properties") or {}).keys())
    if not props or all(k in props for k in args) or len(args) != 1:
        return name, args
    target = (params.get("required") or props)[0]
    return name, {target: next(iter(args.values()))}


def _answer_from_results(messages: list[dict[str, Any]]) -> str:
    """Prose answer quoting the trailing tool results, in the question's language."""
    start = len(messages)
    while start > 0 and messages[start - 1].get("role") == "tool":
        start -= 1
    results = messages[start:]
    names: dict[str, str] = {}
    ordered: list[str] = []
    if start > 0 and messages[start - 1].get("role") == "assistant":
        for call in messages[start - 1].get("tool_calls") or []:
            name = str(call.get("function", {}).get("name", "tool"))
            names[str(call.get("id"))] = name
            ordered.append(name)
    zh = is_chinese(_last_user_text(messages[:start]))
    lines = ["查询结果如下：" if zh else "Here's what I found:"]
    failures = 0
    for i, result in enumerate(results):
        name = (
            result.get("name")
            or names.get(str(result.get("tool_call_id")))
            or (ordered[i] if i < len(ordered) else "tool")
        )
        content = text_of(result.get("content")).strip()
        if content.startswith("Error"):
            failures += 1
            lines.append(f"- {name} 工具出错了：{content}" if zh else f"- The {name} tool reported an error: {content}")
            continue
        label = _LABELS.get(name, (name, name))[1 if zh else 0]
        lines.append(f"- {label}（{name}）：{_facts(content)}" if zh else f"- {label} ({name}): {_facts(content)}")
    if failures == len(results):
        lines[0] = "抱歉，工具调用失败了：" if zh else "Sorry, I couldn't get that information:"
    return "\n".join(lines)


def _facts(content: str) -> str:
    """The key facts of one tool output: scalar fields of a JSON object, else the text."""
    try:
        data = json.loads(content)
    except ValueError:
        return content[:400]
    if isinstance(data, dict):
        scalars = [f"{k}: {v}" for k, v in data.items() if isinstance(v, str | int | float | bool)]
        return "; ".join(scalars[:8]) or content[:400]
    return content[:400]
