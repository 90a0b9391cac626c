"""Unit tests for writer_magics.tools.functions: schemas from Python functions, and running calls.

This module uses ``from __future__ import annotations``, so every hint below is a
string: the schemas are built from evaluated annotations, as in a user's module.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from IPython.core.error import UsageError
from pydantic import BaseModel

from writer_magics.errors import ToolSchemaError
from writer_magics.tools.functions import (
    error_text,
    function_tool,
    parse_docstring,
    resolve_tools,
    run_call,
    tool_definitions,
)


def parameters(func: Any) -> dict[str, Any]:
    return dict(function_tool(func)["function"]["parameters"])


def prop(annotation_func: Any) -> dict[str, Any]:
    return dict(parameters(annotation_func)["properties"]["x"])


# --------------------------------------------------------------------------- exact JSON


def get_weather(city: str, unit: Literal["c", "f"] = "c") -> str:
    """Current weather for a city.

    Args:
        city: The city name, e.g. Paris.
        unit: Temperature unit.
    """
    return f"18{unit.upper()} in {city}"


def test_exact_function_tool_json() -> None:
    assert function_tool(get_weather) == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"description": "The city name, e.g. Paris.", "type": "string"},
                    "unit": {
                        "description": "Temperature unit.",
                        "type": "string",
                        "enum": ["c", "f"],
                        "default": "c",
                    },
                },
                "required": ["city"],
            },
        },
    }


def test_no_arguments_no_docstring() -> None:
    def ping() -> str:
        return "pong"

    assert function_tool(ping) == {
        "type": "function",
        "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
    }


def test_name_given_overrides_dunder_name() -> None:
    tool = function_tool(lambda x=1: x, name="one")
    assert tool["function"]["name"] == "one"
    assert tool["function"]["parameters"]["properties"] == {"x": {"type": "integer", "default": 1}}


# --------------------------------------------------------------------------- types


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str


class Person(BaseModel):
    """Someone with an address."""

    name: str
    age: int = 0
    address: Address


def f_str(x: str) -> None: ...
def f_int(x: int) -> None: ...
def f_float(x: float) -> None: ...
def f_bool(x: bool) -> None: ...
def f_list(x: list) -> None: ...  # type: ignore[type-arg]
def f_list_str(x: list[str]) -> None: ...
def f_seq(x: Sequence[int]) -> None: ...
def f_tuple(x: tuple[int, ...]) -> None: ...
def f_pair(x: tuple[str, int]) -> None: ...
def f_set(x: set[str]) -> None: ...
def f_dict(x: dict) -> None: ...  # type: ignore[type-arg]
def f_dict_int(x: dict[str, int]) -> None: ...
def f_literal(x: Literal["a", "b"]) -> None: ...
def f_literal_mixed(x: Literal["a", 1]) -> None: ...
def f_optional(x: Optional[int]) -> None: ...  # noqa: UP045 (the typing spelling on purpose)
def f_pipe_none(x: str | None) -> None: ...
def f_union(x: Union[int, str]) -> None: ...  # noqa: UP007
def f_enum(x: Color) -> None: ...
def f_any(x: Any) -> None: ...
def f_annotated(x: Annotated[int, "How many"]) -> None: ...
def f_list_model(x: list[Address]) -> None: ...


@pytest.mark.parametrize(
    ("func", "schema"),
    [
        (f_str, {"type": "string"}),
        (f_int, {"type": "integer"}),
        (f_float, {"type": "number"}),
        (f_bool, {"type": "boolean"}),
        (f_list, {"type": "array"}),
        (f_list_str, {"type": "array", "items": {"type": "string"}}),
        (f_seq, {"type": "array", "items": {"type": "integer"}}),
        (f_tuple, {"type": "array", "items": {"type": "integer"}}),
        (
            f_pair,
            {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "integer"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (f_set, {"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        (f_dict, {"type": "object"}),
        (f_dict_int, {"type": "object", "additionalProperties": {"type": "integer"}}),
        (f_literal, {"type": "string", "enum": ["a", "b"]}),
        (f_literal_mixed, {"enum": ["a", 1]}),
        (f_optional, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (f_pipe_none, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
        (f_union, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (f_enum, {"type": "string", "enum": ["red", "green"]}),
        (f_any, {}),
        (f_annotated, {"description": "How many", "type": "integer"}),
    ],
)
def test_schema_of_each_supported_type(func: Any, schema: dict[str, Any]) -> None:
    params = parameters(func)
    assert params["properties"]["x"] == schema
    assert params["required"] == ["x"]


def test_pydantic_model_argument_inlines_schema_and_hoists_defs() -> None:
    def register(person: Person) -> str:
        """Register a person."""
        return person.name

    params = parameters(register)
    person = params["properties"]["person"]
    assert person["title"] == "Person" and person["type"] == "object"
    assert person["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert params["$defs"]["Address"]["properties"]["city"] == {"title": "City", "type": "string"}
    assert params["required"] == ["person"]


def test_list_of_models_keeps_nested_schema() -> None:
    items = prop(f_list_model)["items"]
    assert items["title"] == "Address" and items["required"] == ["street", "city"]


def test_defaults_optional_and_inferred_types() -> None:
    def search(  # type: ignore[no-untyped-def]  # `exact` has no hint on purpose
        query: str,
        limit: int = 10,
        colour: Color = Color.RED,
        since: Optional[str] = None,  # noqa: UP045
        exact=False,  # no hint: the default says boolean
        ratio=0.5,
    ) -> list[str]:
        return []

    params = parameters(search)
    assert params["required"] == ["query"]
    assert params["properties"]["limit"] == {"type": "integer", "default": 10}
    assert params["properties"]["colour"] == {
        "type": "string",
        "enum": ["red", "green"],
        "default": "red",
    }
    assert params["properties"]["since"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "default": None,
    }
    assert params["properties"]["exact"] == {"type": "boolean", "default": False}
    assert params["properties"]["ratio"] == {"type": "number", "default": 0.5}


def test_default_that_is_not_json_is_left_out() -> None:
    def when(day: str = "x", at: Any = datetime.date(2026, 1, 1)) -> None: ...

    assert parameters(when)["properties"]["at"] == {}


def test_annotated_text_wins_over_the_docstring() -> None:
    def count(x: Annotated[int, "From Annotated"], y: int) -> None:
        """Count.

        Args:
            x: From the docstring.
            y: Why not.
        """

    props = parameters(count)["properties"]
    assert props["x"]["description"] == "From Annotated"
    assert props["y"]["description"] == "Why not."


def test_callable_objects_and_classes() -> None:
    class Adder:
        """Adds a fixed amount."""

        def __call__(self, x: int) -> int:
            return x + 1

    tool = function_tool(Adder(), name="adder")
    assert tool["function"]["parameters"]["properties"] == {"x": {"type": "integer"}}
    assert tool["function"]["description"] == "Adds a fixed amount."


# --------------------------------------------------------------------------- docstrings


def test_google_docstring() -> None:
    doc = parse_docstring(
        """Summarise a text.

        Longer explanation
        on two lines.

        Args:
            text (str): The text to
                summarise, any length.
            words: Target length.
            *rest: ignored.

        Returns:
            str: A summary.

        Raises:
            ValueError: never.
        """
    )
    assert doc.description == "Summarise a text.\n\nLonger explanation\non two lines."
    assert doc.arguments == {
        "text": "The text to summarise, any length.",
        "words": "Target length.",
        "rest": "ignored.",
    }


def test_numpy_docstring() -> None:
    doc = parse_docstring(
        """Add two numbers.

        Parameters
        ----------
        a : int
            The first
            number.
        b : int, optional
            The second.

        Returns
        -------
        int
            The sum.
        """
    )
    assert doc.description == "Add two numbers."
    assert doc.arguments == {"a": "The first number.", "b": "The second."}


def test_rest_docstring() -> None:
    doc = parse_docstring(
        """Subtract.

        :param a: The minuend.
        :param int b: The subtrahend,
            continued.
        :type b: int
        :returns: The difference.
        """
    )
    assert doc.description == "Subtract."
    assert doc.arguments == {"a": "The minuend.", "b": "The subtrahend, continued."}


def test_docstring_texts_reach_the_schema() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers.

        Parameters
        ----------
        a : int
            First.
        b : int
            Second.
        """
        return a + b

    tool = function_tool(add)["function"]
    assert tool["description"] == "Add two numbers."
    assert tool["parameters"]["properties"]["b"] == {"description": "Second.", "type": "integer"}


def test_empty_docstring() -> None:
    assert parse_docstring(None) == parse_docstring("") == parse_docstring("   ")
    assert parse_docstring(None).description == "" and parse_docstring(None).arguments == {}


# --------------------------------------------------------------------------- refusals


def f_args(*values: int) -> None: ...
def f_kwargs(**options: str) -> None: ...
def f_untyped(x) -> None: ...  # type: ignore[no-untyped-def]
def f_none_default(x=None) -> None: ...  # type: ignore[no-untyped-def]
def f_complex(x: complex) -> None: ...
def f_int_keys(x: dict[int, str]) -> None: ...
def f_unresolvable(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821
async def f_async(x: int) -> None: ...


@pytest.mark.parametrize(
    ("func", "name", "message"),
    [
        (
            f_args,
            None,
            "f_args cannot be used as a tool: *values cannot be described; name each argument",
        ),
        (
            f_kwargs,
            None,
            "f_kwargs cannot be used as a tool: **options cannot be described; name each argument",
        ),
        (
            f_untyped,
            None,
            "f_untyped cannot be used as a tool: parameter 'x' has no type hint; "
            "annotate it (e.g. x: str)",
        ),
        (
            f_none_default,
            None,
            "f_none_default cannot be used as a tool: parameter 'x' has no "
            "type hint; annotate it (e.g. x: str)",
        ),
        (
            f_complex,
            None,
            "f_complex cannot be used as a tool: parameter 'x' has type complex, "
            "which has no JSON form; use str, int, float, bool, list[...], dict[str, ...], "
            "Literal[...], Optional[...], an Enum or a pydantic model",
        ),
        (
            f_int_keys,
            None,
            "f_int_keys cannot be used as a tool: parameter 'x': JSON object "
            "keys are strings, not int",
        ),
        (
            f_unresolvable,
            None,
            "f_unresolvable cannot be used as a tool: a type hint cannot be "
            "evaluated (NameError: name 'NoSuchType' is not defined)",
        ),
        (
            f_async,
            None,
            "f_async cannot be used as a tool: it is async; wrap it in a plain function",
        ),
        (
            f_str,
            "has space",
            "'has space' cannot be a tool name: use letters, digits, _ and - (at most 64)",
        ),
        (
            len,
            None,
            "len cannot be used as a tool: parameter 'obj' has no type hint; annotate "
            "it (e.g. obj: str)",
        ),
    ],
)
def test_undescribable_functions_get_one_line(func: Any, name: str | None, message: str) -> None:
    with pytest.raises(ToolSchemaError) as info:
        function_tool(func, name=name)
    assert str(info.value) == message
    assert isinstance(info.value, UsageError)
    assert info.value._render_traceback_() == [f"UsageError: {message}"]


# --------------------------------------------------------------------------- resolving


def test_resolve_tools_keeps_the_typed_names_in_order() -> None:
    alias = get_weather
    found = resolve_tools(["alias", "f_int"], {"alias": alias, "f_int": f_int})
    assert list(found) == ["alias", "f_int"] and found["alias"] is get_weather
    tools = tool_definitions(found)
    assert [t["function"]["name"] for t in tools] == ["alias", "f_int"]


def test_resolve_tools_errors() -> None:
    ns = {"get_weather": get_weather, "limit": 3}
    with pytest.raises(UsageError) as info:
        resolve_tools(["get_wether"], ns)
    assert str(info.value) == (
        "--tools: no function named 'get_wether' is defined; did you mean get_weather?"
    )
    with pytest.raises(UsageError) as info:
        resolve_tools(["nothing"], ns)
    assert str(info.value) == "--tools: no function named 'nothing' is defined"
    with pytest.raises(UsageError) as info:
        resolve_tools(["limit"], ns)
    assert str(info.value) == "--tools: limit is a int, not a function"


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_run_call_results() -> None:
    assert run_call(get_weather, '{"city": "Paris"}') == ("18C in Paris", False)
    assert run_call(lambda: {"a": [1, 2]}, "") == ('{"a": [1, 2]}', False)
    assert run_call(lambda: None, "{}") == ("null", False)
    assert run_call(lambda: 3.5, "{}") == ("3.5", False)
    assert run_call(lambda: "é", "{}") == ("é", False)
    encoded, failed = run_call(
        lambda: {
            "p": Point(1, 2),
            "m": Address(street="1 Main St", city="Lyon"),
            "c": Color.GREEN,
            "s": (1,),
            "d": datetime.date(2026, 1, 2),
        },
        "{}",
    )
    assert not failed
    assert json.loads(encoded) == {
        "p": {"x": 1, "y": 2},
        "m": {"street": "1 Main St", "city": "Lyon"},
        "c": "green",
        "s": [1],
        "d": "2026-01-02",
    }


def test_run_call_converts_json_to_the_hinted_types() -> None:
    seen: list[Any] = []

    def take(
        person: Person,
        colour: Color,
        pair: tuple[str, int],
        tags: set[str],
        maybe: Optional[Address] = None,  # noqa: UP045
    ) -> str:
        seen.extend([person, colour, pair, tags, maybe])
        return "ok"

    arguments = {
        "person": {"name": "Ada", "address": {"street": "s", "city": "c"}},
        "colour": "red",
        "pair": ["a", 1],
        "tags": ["x", "x"],
        "maybe": {"street": "t", "city": "d"},
    }
    assert run_call(take, json.dumps(arguments)) == ("ok", False)
    person, colour, pair, tags, maybe = seen
    assert isinstance(person, Person) and person.address.city == "c"
    assert colour is Color.RED and pair == ("a", 1) and tags == {"x"}
    assert isinstance(maybe, Address)


def test_run_call_positional_only() -> None:
    def sub(a: int, /, b: int) -> int:
        return a - b

    assert run_call(sub, '{"b": 1, "a": 5}') == ("4", False)
    content, failed = run_call(sub, '{"b": 1}')  # Python 3.10 and 3.11 name it differently
    assert failed and content.startswith("Error: TypeError: ")
    assert content.endswith("sub() missing 1 required positional argument: 'a'")


def test_run_call_failures_go_back_as_text() -> None:
    def boom(x: int) -> int:
        raise ValueError(f"no {x}")

    assert run_call(boom, '{"x": 3}') == ("Error: ValueError: no 3", True)
    assert run_call(boom, "{bad") == (
        "Error: the arguments are not valid JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1))",
        True,
    )
    assert run_call(boom, "[1]") == ("Error: the arguments must be a JSON object, got [1]", True)
    content, failed = run_call(boom, '{"x": 1, "y": 2}')
    assert failed and content.startswith("Error: TypeError: ")
    assert content.endswith("boom() got an unexpected keyword argument 'y'")
    content, failed = run_call(f_enum, '{"x": "blue"}')
    assert failed and content == "Error: ValueError: 'blue' is not a valid Color"


def test_run_call_lets_keyboard_interrupt_through() -> None:
    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_call(stop, "{}")


def test_error_text() -> None:
    assert error_text(RuntimeError()) == "Error: RuntimeError"
    assert error_text(KeyError("k")) == "Error: KeyError: 'k'"
