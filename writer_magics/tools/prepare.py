"""What a ``%%chat`` cell asks for beyond text: Python tools, a built-in tool, a JSON
schema. Resolved and validated from the user namespace before anything is sent, and
applied to the answer afterwards (parsed JSON, the logprobs picture).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from writer_magics.answer.result import Result
from writer_magics.line.images import ChatImage
from writer_magics.line.options import ChatOptions
from writer_magics.request import JSON, builtin_tool


@dataclass(frozen=True)
class ChatFeatures:
    """The resolved extras of one chat cell; empty for a plain question."""

    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    tools: tuple[JSON, ...] = ()
    tool_choice: str | None = None
    response_format: JSON | None = None
    schema: Any = None
    images: tuple[ChatImage, ...] = ()

    @property
    def body_fields(self) -> dict[str, Any]:
        """Keyword arguments for :func:`chat_request`."""
        return {
            "tools": list(self.tools) or None,
            "tool_choice": self.tool_choice,
            "response_format": self.response_format,
        }


def prepare(
    opts: ChatOptions, user_ns: Mapping[str, Any], *, max_image_bytes: int | None = None
) -> ChatFeatures:
    """Resolve ``--tools``, the built-in tool, ``--schema`` and ``--image``; UsageError on
    bad input (``max_image_bytes``: the image size limit, default ``images.MAX_IMAGE_BYTES``)."""
    from writer_magics.line import images

    found = images.resolve(
        opts.images,
        user_ns,
        models=opts.models,
        max_bytes=images.MAX_IMAGE_BYTES if max_image_bytes is None else max_image_bytes,
    )
    functions: dict[str, Callable[..., Any]] = {}
    tools: list[JSON] = []
    if opts.tools:
        from writer_magics.tools.functions import resolve_tools, tool_definitions

        functions = resolve_tools(opts.tools, user_ns)
        tools.extend(tool_definitions(functions))
    builtin = builtin_tool(opts)
    if builtin is not None:
        tools.append(builtin)
    schema = response_format = None
    if opts.schema:
        from writer_magics.answer import parsed

        schema = parsed.resolve_schema(opts.schema, user_ns)
        response_format = parsed.response_format(schema, opts.schema)
    return ChatFeatures(
        functions=functions,
        tools=tuple(tools),
        tool_choice=opts.tool_choice,
        response_format=response_format,
        schema=schema,
        images=found,
    )


def parse_answer(result: Result, features: ChatFeatures) -> Result:
    """With ``--schema``: the answer parsed into ``result.parsed`` (or a clear error)."""
    if features.schema is None:
        return result
    from writer_magics.answer import parsed

    return dataclasses.replace(result, parsed=parsed.parse(result.text, features.schema))


def logprobs_html(result: Result) -> str | None:
    """The token-probability picture of the first choice, when there are logprobs."""
    records = result.logprobs
    if not records:
        return None
    from writer_magics.display.logprobs import logprobs_html as render

    return render(records)


def logprobs_show_secret(result: Result, secrets: Sequence[str | None]) -> bool:
    """Whether the tokens (or their alternatives) spell a secret in play: the picture
    shows each token on its own, so it cannot redact a key cut across tokens."""
    from writer_magics.errors import redact_answer

    records = result.logprobs or ()
    tokens = "".join(str(r.get("token", "")) for r in records)
    alternatives = "\n".join(
        str(alt.get("token", ""))
        for r in records
        for alt in (r.get("top") or r.get("top_logprobs") or ())
        if isinstance(alt, Mapping)
    )
    return any(redact_answer(text, secrets) != text for text in (tokens, alternatives))


def logprobs_text(result: Result) -> str:
    """The logprobs picture's ``text/plain``: each token with its probability, one line."""
    from writer_magics.display.logprobs import logprobs_plain

    return logprobs_plain(result.logprobs)
