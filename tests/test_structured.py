"""Unit tests for writer_magics.answer.parsed: response_format, parsing, one-line errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from IPython.core.error import UsageError
from pydantic import BaseModel, Field

from writer_magics.answer import parsed as structured
from writer_magics.answer.parsed import (
    parse,
    pretty,
    pretty_markdown,
    resolve_schema,
    response_format,
    schema_name,
)
from writer_magics.display import TextView
from writer_magics.errors import StructuredOutputError, WriterError
from writer_magics.request import Request, chat_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.loop import LoopThread


class Step(BaseModel):
    title: str
    minutes: int = Field(ge=1, le=60)


class Recipe(BaseModel):
    """A recipe with its steps."""

    name: str
    difficulty: Literal["easy", "hard"]
    steps: list[Step]


ANSWER_SCHEMA: dict[str, Any] = {
    "title": "Answer",
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "sources": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------- request


def test_response_format_for_a_pydantic_model() -> None:
    fmt = response_format(Recipe)
    assert fmt == {
        "type": "json_schema",
        "json_schema": {
            "name": "Recipe",
            "description": "A recipe with its steps.",
            "schema": Recipe.model_json_schema(),
        },
    }


def test_response_format_for_a_schema_dict() -> None:
    assert response_format(ANSWER_SCHEMA) == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": ANSWER_SCHEMA},
    }
    untitled = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert response_format(untitled, "my_schema", strict=True)["json_schema"] == {
        "name": "my_schema",
        "strict": True,
        "schema": untitled,
    }
    assert response_format(untitled)["json_schema"]["name"] == "response"


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Answer v2 (final)!", "Answer_v2_final"),
        ("réponse", "r_ponse"),
        ("x" * 80, "x" * 64),
        ("!!!", "response"),
        ("ok-name_1", "ok-name_1"),
    ],
)
def test_names_are_sanitised(title: str, name: str) -> None:
    assert schema_name({"title": title}) == name
    assert response_format({"title": title, "type": "object"})["json_schema"]["name"] == name


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (42, "--schema answer expects a pydantic model class or a JSON-schema dict, got int"),
        (
            Recipe(name="x", difficulty="easy", steps=[]),
            "--schema answer expects a pydantic model class or a JSON-schema dict, "
            "got a pydantic model instance",
        ),
        (
            {"type": 5},
            "--schema answer is not a valid JSON schema: type: 5 is not valid under any of "
            "the given schemas",
        ),
    ],
)
def test_bad_schema_objects(obj: Any, message: str) -> None:
    with pytest.raises(UsageError) as info:
        response_format(obj, "answer")
    assert type(info.value) is UsageError and str(info.value) == message


def test_resolve_schema_from_the_namespace() -> None:
    ns = {"Recipe": Recipe, "schemas": {"answer": ANSWER_SCHEMA}, "n": 3}
    assert resolve_schema("Recipe", ns) is Recipe
    assert resolve_schema("schemas['answer']", ns) is ANSWER_SCHEMA
    with pytest.raises(UsageError, match=r"^name 'Recpe' is not defined \(used in --schema\)$"):
        resolve_schema("Recpe", ns)
    with pytest.raises(UsageError, match=r"^--schema n expects a pydantic model class"):
        resolve_schema("n", ns)


# --------------------------------------------------------------------------- answers


def test_parse_a_model_instance() -> None:
    text = '{"name": "Tea", "difficulty": "easy", "steps": [{"title": "Boil", "minutes": 3}]}'
    recipe = parse(text, Recipe)
    assert isinstance(recipe, Recipe) and recipe.steps[0] == Step(title="Boil", minutes=3)


def test_parse_a_dict_and_fenced_json() -> None:
    assert parse('{"answer": "42"}', ANSWER_SCHEMA) == {"answer": "42"}
    assert parse('```json\n{"answer": "42"}\n```\n', ANSWER_SCHEMA) == {"answer": "42"}
    assert parse('```\n{"answer": "42"}\n```', ANSWER_SCHEMA) == {"answer": "42"}


@pytest.mark.parametrize(
    ("text", "obj", "message"),
    [
        ("", Recipe, "the answer is empty, not JSON"),
        (
            '{"name": "Tea",',
            Recipe,
            "the answer is not valid JSON: Expecting property name enclosed in double quotes "
            "at line 1 column 16",
        ),
        (
            '{"name": "Tea", "difficulty": "medium", "steps": []}',
            Recipe,
            "the answer does not match Recipe: difficulty: Input should be 'easy' or 'hard'",
        ),
        (
            '{"name": "Tea", "difficulty": "easy", "steps": [{"title": "Boil", "minutes": 0}]}',
            Recipe,
            "the answer does not match Recipe: steps[0].minutes: Input should be greater than "
            "or equal to 1",
        ),
        (
            '{"steps": 1}',
            Recipe,
            "the answer does not match Recipe: name: Field required (and 2 more)",
        ),
        (
            '{"answer": 42}',
            ANSWER_SCHEMA,
            "the answer does not match Answer: answer: 42 is not of type 'string'",
        ),
        (
            '{"answer": "a", "sources": ["x", 2]}',
            ANSWER_SCHEMA,
            "the answer does not match Answer: sources[1]: 2 is not of type 'string'",
        ),
        (
            "[1, 2]",
            ANSWER_SCHEMA,
            "the answer does not match Answer: the top level: [1, 2] is not of type 'object'",
        ),
    ],
)
def test_bad_answers_are_one_line_and_keep_the_raw_text(text: str, obj: Any, message: str) -> None:
    with pytest.raises(StructuredOutputError) as info:
        parse(text, obj)
    assert isinstance(info.value, WriterError)
    assert info.value.message == message and info.value.raw == text
    assert info.value.lines() == [f"StructuredOutputError: {message}"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"answer": "x", "sources": ["a"]}, None),
        ({"answer": 1}, "answer: 1 is not of type string"),
        ({}, "the top level: 'answer' is a required property"),
        ({"answer": "x", "extra": 1}, "the top level: 'extra' is not an allowed property"),
        ({"answer": "x", "sources": ["a", None]}, "sources[1]: null is not of type string"),
    ],
)
def test_minimal_validator_without_jsonschema(
    monkeypatch: pytest.MonkeyPatch, data: Any, problem: str | None
) -> None:
    monkeypatch.setattr(structured, "_jsonschema", lambda: None)
    assert structured.validation_problem(data, ANSWER_SCHEMA) == problem


def test_minimal_validator_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structured, "_jsonschema", lambda: None)
    check = structured.validation_problem
    refs = {
        "$defs": {"Kind": {"enum": ["a", "b"]}},
        "type": "object",
        "properties": {
            "kind": {"$ref": "#/$defs/Kind"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "c": {"const": 1},
        },
    }
    assert check({"kind": "a", "n": None, "c": 1}, refs) is None
    assert check({"kind": "c"}, refs) == 'kind: "c" is not one of ["a", "b"]'
    assert check({"n": "x"}, refs) == "n: matches none of the allowed forms"
    assert check({"c": 2}, refs) == "c: 1 was expected"
    assert check({"n": 2.0}, refs) is None  # 2.0 is an integer in JSON schema
    assert check({"n": True}, refs) == "n: matches none of the allowed forms"
    assert check([1], {"type": ["object", "null"]}) == (
        "the top level: [1] is not of type object or null"
    )


def test_pretty() -> None:
    assert pretty('{"a":[1,2],"b":"é"}') == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "é"\n}'
    assert pretty("not json") == "not json"
    assert pretty_markdown('{"a": 1}') == '```json\n{\n  "a": 1\n}\n```'
    assert pretty_markdown("has ``` inside").startswith("````json\n")


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_pydantic_round_trip_through_the_server(server: ServerHandle, loop: LoopThread) -> None:
    client = WriterClient(ClientSettings(base_url=server.url, api_key="test-key", max_retries=0))
    body = chat_request(
        model="palmyra-x5",
        messages=[{"role": "user", "content": "A simple recipe for green tea"}],
        response_format=response_format(Recipe),
    )
    try:
        outcome = execute(
            {0: Request("chat", body)},
            loop=loop,
            client=client,
            view=TextView(stream=io.StringIO()),
        )
    finally:
        loop.run(client.aclose)
    assert not outcome.errors
    sent = server.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Recipe"
    assert sent["json_schema"]["schema"] == Recipe.model_json_schema()
    text = outcome.results[0].text
    recipe = parse(text, Recipe)
    assert isinstance(recipe, Recipe)
    assert recipe.model_dump() == json.loads(text)
    assert all(1 <= step.minutes <= 60 for step in recipe.steps)
    assert json.loads(pretty(text)) == json.loads(text)
