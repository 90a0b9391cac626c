"""Request validation and the exact JSON shapes of Writer's responses.

Everything that touches the wire format lives here, so the rest of the server
works on plain dataclasses. Shapes follow ``shared/writer-api.md``: Writer's
error body (``tpe``/``errors``/``extras``), ``chat.completion`` and
``chat.completion.chunk`` objects with explicit nulls, the ``choices: []``
usage chunk, and the completions ``{"value": ...}`` stream.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..line.imagefmt import decode_data_url, sniff

#: Models that answer chat and completions.
KNOWN_MODELS = ("palmyra-x5", "palmyra-x4")
#: Model ids listed by ``GET /v1/models``.
MODEL_LIST = {
    "models": [
        {"id": "palmyra-x5", "name": "Palmyra X5"},
        {"id": "palmyra-x4", "name": "Palmyra X4"},
    ]
}
#: Models Writer removed on 2026-07-13; requests naming them get a 404.
REMOVED_MODELS = (
    "palmyra-x-003-instruct",
    "palmyra-vision",
    "palmyra-med",
    "palmyra-fin",
    "palmyra-creative",
)
#: Models only valid inside a built-in tool.
TOOL_ONLY_MODELS = ("palmyra-translate",)
BUILTIN_TOOL_TYPES = ("graph", "llm", "translation", "vision", "web_search")
MESSAGE_ROLES = ("user", "assistant", "system", "tool")

#: Defaults when the request omits ``max_tokens`` (counted in the server's tokens).
DEFAULT_CHAT_MAX_TOKENS = 1024
DEFAULT_COMPLETION_MAX_TOKENS = 100
MAX_N = 5
MAX_BEST_OF = 10
#: Context windows in the server's tokens (Writer docs: X5 1M; Bedrock's card: X4 128K).
CONTEXT_WINDOWS = {"palmyra-x5": 1_000_000, "palmyra-x4": 128_000}


class ApiError(Exception):
    """An error answered with Writer's JSON error body and an HTTP status."""

    def __init__(
        self,
        status: int,
        tpe: str,
        description: str,
        key: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.tpe = tpe
        self.description = description
        self.key = key
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Writer's error body for this error."""
        return error_body(self.tpe, self.description, self.key)


def error_body(tpe: str, description: str, key: str) -> dict[str, Any]:
    """Writer's error JSON: ``{"tpe", "errors": [{"description", "key", "extras"}], "extras"}``."""
    return {
        "tpe": tpe,
        "errors": [{"description": description, "key": key, "extras": {}}],
        "extras": {},
    }


def bad_request(description: str, key: str = "error.validation.invalid_value") -> ApiError:
    """A 400 ``BadRequest``."""
    return ApiError(400, "BadRequest", description, key)


def not_found(description: str, key: str = "error.model.not_found") -> ApiError:
    """A 404 ``NotFound``."""
    return ApiError(404, "NotFound", description, key)


@dataclass(frozen=True)
class SamplingParams:
    """Fields shared by chat and completions."""

    model: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    random_seed: int | None
    stream: bool


@dataclass(frozen=True)
class ChatRequest:
    """A validated ``POST /v1/chat`` body."""

    params: SamplingParams
    messages: list[dict[str, Any]]
    n: int = 1
    logprobs: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class CompletionRequest:
    """A validated ``POST /v1/completions`` body."""

    params: SamplingParams
    prompt: str
    best_of: int = 1


# --------------------------------------------------------------------------- validation


def _type_error(name: str, expected: str, value: Any) -> ApiError:
    return bad_request(
        f"{name}: expected {expected}, got {value!r}", "error.validation.invalid_type"
    )


def _range_error(name: str, expected: str, value: Any) -> ApiError:
    return bad_request(
        f"{name}: must be {expected}, got {value!r}", "error.validation.out_of_range"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not _is_number(value) or not math.isfinite(value):
        raise _type_error(name, "a number", value)
    if not low <= value <= high:
        raise _range_error(name, f"between {low:g} and {high:g}", value)
    return float(value)


def _integer(
    body: dict[str, Any], name: str, default: int | None, low: int | None, high: int | None
) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(name, "an integer", value)
    if low is not None and value < low:
        limit = f"at least {low}" if high is None else f"between {low} and {high}"
        raise _range_error(name, limit, value)
    if high is not None and value > high:
        raise _range_error(name, f"between {low} and {high}", value)
    return value


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _type_error(name, "a boolean", value)
    return value


def check_model(model: Any, name: str = "model") -> str:
    """Return a usable model id or raise the 400/404 the API would send."""
    if model is None:
        raise bad_request(f"{name}: field is required", "error.validation.required")
    if not isinstance(model, str):
        raise _type_error(name, "a string", model)
    if model in REMOVED_MODELS:
        raise not_found(
            f"Model '{model}' was removed on 2026-07-13; use palmyra-x5",
            "error.model.removed",
        )
    if model not in KNOWN_MODELS:
        raise not_found(
            f"Model '{model}' not found; available models: palmyra-x5, palmyra-x4",
        )
    return model


def _sampling(body: dict[str, Any], default_max_tokens: int) -> SamplingParams:
    model = check_model(body.get("model"))
    max_tokens = _integer(body, "max_tokens", default_max_tokens, 1, None)
    assert max_tokens is not None
    stop_value = body.get("stop")
    stop: tuple[str, ...]
    if stop_value is None:
        stop = ()
    elif isinstance(stop_value, str):
        stop = (stop_value,) if stop_value else ()
    elif isinstance(stop_value, list) and all(isinstance(s, str) for s in stop_value):
        stop = tuple(s for s in stop_value if s)
    else:
        raise _type_error("stop", "a string or a list of strings", stop_value)
    return SamplingParams(
        model=model,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        stop=stop,
        random_seed=_integer(body, "random_seed", None, None, None),
        stream=_boolean(body, "stream"),
    )


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object", "error.request.invalid_json")
    return body


def _check_content(index: int, message: dict[str, Any], model: str) -> None:
    content = message.get("content")
    where = f"messages[{index}].content"
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _type_error(where, "a string, a list of content parts or null", content)
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise _type_error(f"{where}[{j}].image_url.url", "a string", image)
            if model != "palmyra-x5":
                raise bad_request(
                    f"{where}[{j}]: image content parts need palmyra-x5",
                    "error.validation.unsupported_content",
                )
            _check_image_url(f"{where}[{j}].image_url.url", image["url"])
            continue
        raise _type_error(f"{where}[{j}]", "a text or image_url content part", part)


def _check_image_url(where: str, url: str) -> None:
    """An image is an https:// address or a base64 data URL of a PNG, JPEG, GIF or WebP."""
    if url.startswith("https://"):
        return
    if not url.startswith("data:"):
        raise bad_request(f"{where}: must be an https:// or data:image/ URL")
    decoded = decode_data_url(url)
    if decoded is None or sniff(decoded[1]) is None:
        raise bad_request(f"{where}: not a base64 PNG, JPEG, GIF or WebP data URL")


def _messages(body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise bad_request("messages: field is required", "error.validation.required")
    if not isinstance(messages, list):
        raise _type_error("messages", "a list of messages", messages)
    if not messages:
        raise bad_request("messages: must contain at least 1 message", "error.validation.min_items")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _type_error(f"messages[{i}]", "a message object", message)
        role = message.get("role")
        if role is None:
            raise bad_request(f"messages[{i}].role: field is required", "error.validation.required")
        if role not in MESSAGE_ROLES:
            raise bad_request(
                f"messages[{i}].role: must be one of user, assistant, system, tool; got {role!r}",
                "error.validation.invalid_role",
            )
        _check_content(i, message, model)
        tool_calls = message.get("tool_calls")
        if tool_calls is not None and not isinstance(tool_calls, list):
            raise _type_error(f"messages[{i}].tool_calls", "a list or null", tool_calls)
    return messages


def _tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _type_error("tools", "a list of tools", tools)
    builtin: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function" and kind not in BUILTIN_TOOL_TYPES:
            raise bad_request(
                f"tools[{i}].type: must be function, graph, llm, translation, vision or "
                f"web_search; got {kind!r}",
                "error.validation.invalid_tool",
            )
        assert isinstance(tool, dict)
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _type_error(f"tools[{i}].function", "an object", function)
        if kind == "function":
            if not isinstance(function.get("name"), str) or not function["name"]:
                raise bad_request(
                    f"tools[{i}].function.name: field is required", "error.validation.required"
                )
            params = function.get("parameters")
            if params is not None and not isinstance(params, dict):
                raise _type_error(f"tools[{i}].function.parameters", "a JSON schema", params)
            continue
        builtin.add(str(kind))
        _check_builtin(i, str(kind), function)
    if len(builtin) > 1:
        raise bad_request(
            f"Only one built-in tool type per request; got {', '.join(sorted(builtin))}",
            "error.validation.multiple_builtin_tools",
        )
    return tools


def _check_builtin(i: int, kind: str, function: dict[str, Any]) -> None:
    where = f"tools[{i}].function"
    if kind == "vision":
        raise not_found(
            "Model 'palmyra-vision' was removed on 2026-07-13; use palmyra-x5 with image "
            "content parts",
            "error.model.removed",
        )
    if kind == "llm":
        check_model(function.get("model"), f"{where}.model")
    if kind == "translation":
        model = function.get("model")
        if model != "palmyra-translate":
            raise bad_request(
                f"{where}.model: must be palmyra-translate, got {model!r}",
                "error.validation.invalid_value",
            )
    if kind == "graph":
        ids = function.get("graph_ids")
        if not isinstance(ids, list) or not all(isinstance(g, str) for g in ids):
            raise _type_error(f"{where}.graph_ids", "a list of strings", ids)
        if not isinstance(function.get("subqueries"), bool):
            raise _type_error(f"{where}.subqueries", "a boolean", function.get("subqueries"))
    if kind == "web_search":
        for key in ("include_domains", "exclude_domains"):
            value = function.get(key, [])
            if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
                raise _type_error(f"{where}.{key}", "a list of strings", value)


def _tool_choice(body: dict[str, Any], tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_request(
                f"tool_choice: must be auto, none, required or a function; got {choice!r}",
                "error.validation.invalid_value",
            )
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        names = [t["function"]["name"] for t in tools if t.get("type") == "function"]
        if name not in names:
            raise bad_request(
                f"tool_choice: no function tool named {name!r}", "error.validation.invalid_value"
            )
        return choice
    raise _type_error("tool_choice", "auto, none, required or {type: function, ...}", choice)


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _type_error("response_format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind != "json_schema":
        raise bad_request(
            f"response_format.type: must be text or json_schema, got {kind!r}",
            "error.validation.invalid_value",
        )
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise bad_request(
            "response_format.json_schema: required when type is json_schema",
            "error.validation.required",
        )
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise _type_error("response_format.json_schema.schema", "a JSON schema object", schema)
    return fmt


def parse_chat(raw: Any) -> ChatRequest:
    """Validate a chat body the way the API does; raise :class:`ApiError` otherwise."""
    body = _require_object(raw)
    params = _sampling(body, DEFAULT_CHAT_MAX_TOKENS)
    messages = _messages(body, params.model)
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict) or not isinstance(options.get("include_usage"), bool):
            raise _type_error("stream_options", "{include_usage: boolean}", options)
        include_usage = options["include_usage"]
    tools = _tools(body)
    n = _integer(body, "n", 1, 1, MAX_N)
    assert n is not None
    return ChatRequest(
        params=params,
        messages=messages,
        n=n,
        logprobs=_boolean(body, "logprobs"),
        include_usage=include_usage,
        tools=tools,
        tool_choice=_tool_choice(body, tools),
        response_format=_response_format(body),
    )


def parse_completion(raw: Any) -> CompletionRequest:
    """Validate a completions body; raise :class:`ApiError` otherwise."""
    body = _require_object(raw)
    params = _sampling(body, DEFAULT_COMPLETION_MAX_TOKENS)
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("prompt: field is required", "error.validation.required")
    if not isinstance(prompt, str):
        raise _type_error("prompt", "a string", prompt)
    best_of = _integer(body, "best_of", 1, 1, MAX_BEST_OF)
    assert best_of is not None
    return CompletionRequest(params=params, prompt=prompt, best_of=best_of)


def check_context(model: str, prompt_tokens: int, limit: int | None = None) -> None:
    """Refuse a prompt longer than the model's context window (``limit`` overrides it).

    Writer documents no wording for this failure; the reply is a 400 ``BadRequest``
    in Writer's error shape, with a description that names both numbers.
    """
    window = limit if limit is not None else CONTEXT_WINDOWS.get(model)
    if window is not None and prompt_tokens > window:
        raise bad_request(
            f"The prompt is {prompt_tokens} tokens, more than the {window}-token context "
            f"window of {model}. Shorten the messages.",
            "error.validation.context_length_exceeded",
        )


# --------------------------------------------------------------------------- response shapes

EMPTY_GRAPH_DATA: dict[str, Any] = {"sources": None, "status": None, "subqueries": None}


def new_id() -> str:
    """A fresh UUID string (Writer uses a new one per chunk)."""
    return str(uuid.uuid4())


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The full usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_token_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_completion(
    model: str, choices: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    return {
        "id": new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "v1",
        "service_tier": "standard",
        "choices": choices,
        "usage": usage,
    }


def chat_message(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A non-streaming assistant message; ``data`` holds any ``*_data`` of built-in tools."""
    data = data or {}
    return {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "tool_calls": tool_calls,
        "graph_data": data.get("graph_data", dict(EMPTY_GRAPH_DATA)),
        "llm_data": data.get("llm_data"),
        "translation_data": data.get("translation_data"),
        "web_search_data": data.get("web_search_data"),
    }


def chat_delta(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A streaming delta with Writer's explicit nulls."""
    data = data or {}
    delta: dict[str, Any] = {
        "content": content,
        "role": "assistant",
        "tool_calls": tool_calls,
        "graph_data": data.get("graph_data", dict(EMPTY_GRAPH_DATA)),
        "llm_data": data.get("llm_data"),
        "translation_data": data.get("translation_data"),
        "refusal": None,
    }
    if "web_search_data" in data:
        delta["web_search_data"] = data["web_search_data"]
    return delta


def chat_chunk(
    model: str,
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` carrying a single choice."""
    return {
        "id": new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "usage": None,
        "system_fingerprint": "v1",
        "service_tier": None,
        "choices": [
            {"index": index, "finish_reason": finish_reason, "logprobs": logprobs, "delta": delta}
        ],
    }


def usage_chunk(model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The final ``choices: []`` chunk sent when ``stream_options.include_usage`` is true."""
    return {
        "id": new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "usage": usage,
        "system_fingerprint": "v1",
        "service_tier": None,
        "choices": [],
    }


def completion_body(model: str, text: str) -> dict[str, Any]:
    """A non-streaming completions response."""
    return {"choices": [{"text": text, "log_probs": None}], "model": model}


def completion_chunk(value: str) -> dict[str, Any]:
    """One completions stream event."""
    return {"value": value}
