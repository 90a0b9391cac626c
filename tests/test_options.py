"""Unit tests for writer_magics.line.options: the magic line as users type it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from IPython.core.error import UsageError

from writer_magics.config import removed_model_warning
from writer_magics.line.options import (
    ChatCommand,
    ChatOptions,
    CompleteOptions,
    Params,
    combinations,
    parse_chat,
    parse_complete,
)
from writer_magics.line.table import chat_arguments, complete_arguments
from writer_magics.request import builtin_tool


@complete_arguments
def complete(line: str, cell: str | None = None) -> None:
    """Send a prompt to /v1/completions."""


@chat_arguments
def chat(line: str, cell: str | None = None) -> None:
    """Send a message to /v1/chat."""


G1, G2, G3 = (
    "6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60",
    "0b6f3c2e-8a41-4d1e-9f5a-3c7e2d1b0a94",
    "9d1c4b7a-2e3f-4a5b-8c6d-7e8f9a0b1c2d",
)

NS: dict[str, Any] = {
    "persona": "You are terse, and kind",
    "temps": [0.2, 1.0],
    "cfg": {"model": "palmyra-x4", "stops": ("END", "\n\n")},
    "limit": 64,
}


def pc(line: str, cell: bool = True, **ns: Any) -> ChatOptions:
    return parse_chat(line, {**NS, **ns}, default_model="palmyra-x5", cell=cell)


def pk(line: str, cell: bool = True) -> CompleteOptions:
    return parse_complete(line, NS, default_model="palmyra-x5", cell=cell)


def error(func: Any, line: str, cell: bool = True) -> str:
    with pytest.raises(UsageError) as info:
        func(line, cell)
    assert type(info.value) is UsageError  # exact type: IPython prints one line
    message = str(info.value)
    assert "\n" not in message and "usage:" not in message
    return message


# --------------------------------------------------------------------------- values


def test_defaults() -> None:
    opts = pc("")
    assert opts == ChatOptions(models=("palmyra-x5",))
    assert opts.session == "default" and opts.stream and opts.command is None
    assert opts.params == [Params(model="palmyra-x5")]
    assert pk("") == CompleteOptions(models=("palmyra-x5",))


def test_shared_options_in_python_types() -> None:
    opts = pk(
        "-m palmyra-x4 --max-tokens 200 -t 0.7 --top-p 0.9 --stop END --stop '\\n' "
        "--no-stream -o answer --timeout 2.5 --dry-run --cache --best-of 3 --random-seed 0"
    )
    assert opts.models == ("palmyra-x4",)
    assert opts.max_token_limits == (200,)
    assert opts.temperatures == (0.7,)
    assert opts.top_ps == (0.9,)
    assert opts.stop == ("END", "\n")
    assert (opts.stream, opts.out, opts.timeout) == (False, "answer", 2.5)
    assert (opts.dry_run, opts.cache, opts.best_of, opts.random_seed) == (True, True, 3, 0)
    assert opts.params == [Params("palmyra-x4", 0.7, 0.9, 200, None)]


def test_chat_options() -> None:
    opts = pc('-s "You are terse" --session ideas --new -n 2 --logprobs -t0.3')
    assert opts.systems == ("You are terse",)
    assert (opts.session, opts.new, opts.n, opts.logprobs) == ("ideas", True, 2, True)
    assert opts.temperatures == (0.3,)


def test_equals_forms_and_values_starting_with_dash() -> None:
    opts = pc("--temperature=0.5 --stop=-- -s=--be-terse --stop -")
    assert opts.temperatures == (0.5,)
    assert opts.stop == ("--", "-")
    assert opts.systems == ("--be-terse",)


# --------------------------------------------------------------------------- line form


@pytest.mark.parametrize(
    ("line", "prompt", "temps"),
    [
        ("Once upon a time", "Once upon a time", None),
        ("-t 0.2 What is RAG?", "What is RAG?", (0.2,)),
        ("What's up, doc?  ", "What's up, doc?", None),
        ("-t 0.2 -- -v means verbose?", "-v means verbose?", (0.2,)),
        ('"-v means?"', "-v means?", None),
        ("-5 degrees is cold", "-5 degrees is cold", None),
        ("Explain {cfg} and -t 1", "Explain {cfg} and -t 1", None),
        ("-t 0.2", None, (0.2,)),
    ],
)
def test_line_form_prompt_is_the_raw_rest(
    line: str, prompt: str | None, temps: tuple[float, ...] | None
) -> None:
    opts = pc(line, cell=False)
    assert opts.prompt == prompt
    assert opts.temperatures == temps
    assert pk(line, cell=False).prompt == prompt


def test_cell_form_rejects_stray_words() -> None:
    assert error(pc, "-s You are terse") == (
        "Unexpected text on the %%chat line: 'are terse'; write the prompt in the cell "
        "below, and quote option values that contain spaces"
    )
    assert "%%complete line: 'hello'" in error(pk, "-t 0.2 hello")


# --------------------------------------------------------------------------- variables


def test_values_from_variables() -> None:
    opts = pc("-s $persona --model={cfg['model']} --max-tokens {limit} -o out")
    assert opts.systems == ("You are terse, and kind",)  # one value, commas and all
    assert opts.models == ("palmyra-x4",)
    assert opts.max_token_limits == (64,)


def test_list_variables_repeat_the_option() -> None:
    opts = pc('-t $temps --stop {cfg["stops"]}')
    assert opts.temperatures == (0.2, 1.0)
    assert opts.stop == ("END", "\n\n")


def test_quoted_or_partial_references_are_literal() -> None:
    opts = pc("-s '$persona' --stop x{limit} --session {nope")
    assert opts.systems == ("$persona",)
    assert opts.stop == ("x{limit}",)
    assert opts.session == "{nope"


def test_undefined_variable() -> None:
    assert error(pc, "-s $foo") == "name 'foo' is not defined (used in --system)"
    assert error(pc, "-m {cfg['nope']}") == (
        "cfg (of type dict) has no item 'nope' (used in --model)"
    )


# --------------------------------------------------------------------------- sweeps


def test_sweep_product_in_order() -> None:
    opts = pc("-m palmyra-x5,palmyra-x4 -t 0.2,1.0 -s A -s 'B, with a comma'")
    assert opts.is_sweep
    assert combinations(opts) == [
        Params("palmyra-x5", 0.2, None, None, "A"),
        Params("palmyra-x5", 0.2, None, None, "B, with a comma"),
        Params("palmyra-x5", 1.0, None, None, "A"),
        Params("palmyra-x5", 1.0, None, None, "B, with a comma"),
        Params("palmyra-x4", 0.2, None, None, "A"),
        Params("palmyra-x4", 0.2, None, None, "B, with a comma"),
        Params("palmyra-x4", 1.0, None, None, "A"),
        Params("palmyra-x4", 1.0, None, None, "B, with a comma"),
    ]


def test_sweep_items_are_each_validated_and_repeats_accumulate() -> None:
    opts = pk("--top-p '0.5, 1' --top-p 0.1 --max-tokens 10,20")
    assert opts.top_ps == (0.5, 1.0, 0.1)
    assert [p.max_tokens for p in opts.params] == [10, 20, 10, 20, 10, 20]
    assert error(pk, "-t 0.2,3") == "--temperature expects a number between 0 and 2, got '3'"
    assert error(pk, "-t 0.2,") == "--temperature has an empty item in '0.2,'"
    negative_zero = pk("--top-p -0 -t -0.0").params[0]
    assert (str(negative_zero.top_p), str(negative_zero.temperature)) == ("0.0", "0.0")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--temprature 0.2", "Unknown option --temprature for %%chat; did you mean --temperature?"),
        ("-temperature 1", "Unknown option -temperature for %%chat; did you mean --temperature?"),
        ("--sesion x", "Unknown option --sesion for %%chat; did you mean --session?"),
        ("--temp 0.5", "Unknown option --temp for %%chat; did you mean --temperature?"),
        (
            "--schema Person -t 0.1,0.9",
            "--schema parses and checks one answer and cannot be combined with a sweep yet; "
            "give each setting its own cell",
        ),
        (
            "--schema Person -n 2",
            "--schema parses and checks one answer and cannot be combined with -n above 1 yet; "
            "give each setting its own cell",
        ),
        (
            "-o answer -o other",
            "--out is given twice ('answer', then 'other'); it takes one value: give it once",
        ),
        (
            "--session x --session y",
            "--session is given twice ('x', then 'y'); it takes one value: give it once",
        ),
        ("--frobnicate", "Unknown option --frobnicate for %%chat; see %%chat? for the options"),
        ("--best-of 2", "--best-of is a %%complete option; %%chat does not take it"),
        ("-t hot", "--temperature expects a number between 0 and 2, got 'hot'"),
        ("-t 2.5", "--temperature expects a number between 0 and 2, got '2.5'"),
        ("-t nan", "--temperature expects a number between 0 and 2, got 'nan'"),
        ("--top-p -0.1", "--top-p expects a number between 0 and 1, got '-0.1'"),
        ("--max-tokens 0", "--max-tokens expects a whole number between 1 and 2147483647, got '0'"),
        (
            "--max-tokens 1.5",
            "--max-tokens expects a whole number between 1 and 2147483647, got '1.5'",
        ),
        ("--n 0", "--n expects a whole number between 1 and 128, got '0'"),
        ("-n two", "--n expects a whole number between 1 and 128, got 'two'"),
        ("--timeout 0", "--timeout expects a positive number of seconds, got '0'"),
        ("-t", "--temperature needs a value, e.g. --temperature 0.7"),
        ("-t --no-stream", "--temperature needs a value, e.g. --temperature 0.7"),
        ("--max-tokens=", "--max-tokens needs a value"),
        ("--no-stream=yes", "--no-stream is a switch and takes no value"),
        ("--out", "--out needs a value, e.g. --out answer"),
        ("--out ''", "--out expects a Python variable name such as answer, got ''"),
        ("-o 1x", "--out expects a Python variable name such as answer, got '1x'"),
        ("-o class", "--out class: class is a Python keyword; choose another name"),
        ("-m 'palmyra x5'", "--model expects a model name such as palmyra-x5, got 'palmyra x5'"),
        ("--stop ''", "--stop expects a non-empty stop sequence"),
        ("--session ' '", "--session expects a name, got ' '"),
        (
            '-s "unclosed',
            'The %%chat line has an unclosed " quote at column 11 ("unclosed): '
            'close it with "; nothing was sent',
        ),
        ("--show", "--show works in the line form only: %chat --show"),
    ],
)
def test_chat_errors(line: str, message: str) -> None:
    assert error(pc, line) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--system x", "--system is a %%chat option; %%complete does not take it"),
        ("--session x", "--session is a %%chat option; %%complete does not take it"),
        ("--best-of 0", "--best-of expects a whole number between 1 and 2147483647, got '0'"),
        (
            "--random-seed -1",
            "--random-seed expects a whole number between 0 and 2147483647, got '-1'",
        ),
        (
            "--random-seed 2147483648",
            "--random-seed expects a whole number between 0 and 2147483647, got '2147483648'",
        ),
    ],
)
def test_complete_errors(line: str, message: str) -> None:
    assert error(pk, line) == message


# --------------------------------------------------------------------------- commands


@pytest.mark.parametrize("command", list(ChatCommand))
def test_chat_commands(command: ChatCommand) -> None:
    value = " notes.json" if command in (ChatCommand.SAVE, ChatCommand.LOAD) else ""
    opts = pc(f"--{command.value}{value} --session ideas", cell=False)
    assert opts.command is command
    assert opts.session == "ideas"
    assert opts.path == ("notes.json" if value else None)


def test_command_errors() -> None:
    assert error(pc, "--show --reset", False) == (
        "--show and --reset cannot be used together; give one chat command at a time"
    )
    assert error(pc, "--undo please", False) == "%chat --undo takes no prompt text, got 'please'"
    assert error(pc, "--save my chat.json", False) == (
        "%chat --save takes no prompt text, got 'chat.json'; quote a path with spaces: "
        '--save "my chat.json"'
    )
    assert pc("--save “my chat.json”", False).path == "my chat.json"
    assert pc("--load 'Ann's chat.json'", False).path == "Ann's chat.json"
    assert error(pc, "--save", False) == "--save needs a value, e.g. --save chat.json"


# --------------------------------------------------------------------------- models, help


def test_removed_models_warn_but_parse() -> None:
    opts = pc("-m palmyra-med,palmyra-x5 -m palmyra-med")
    assert opts.models == ("palmyra-med", "palmyra-x5")  # the repeat is sent once
    assert opts.warnings == (
        "palmyra-med was removed on 2026-07-13; use palmyra-x5 instead.",
        "--model repeats a value: identical combinations are sent once, 2 requests instead "
        "of 3 (use -n N for several answers)",
    )
    assert removed_model_warning("palmyra-fin", date(2026, 7, 1)) == (
        "palmyra-fin will be removed on 2026-07-13; use palmyra-x5 instead."
    )
    assert removed_model_warning("palmyra-vision", date(2026, 8, 1)) == (
        "palmyra-vision was removed on 2026-07-13; use palmyra-x5 with image content parts "
        "(%%chat --image) instead."
    )
    assert removed_model_warning("palmyra-x4") is None


def test_help_lists_every_option() -> None:
    chat_help = chat.__doc__ or ""
    for flag in (
        "--model",
        "--max-tokens",
        "--temperature",
        "--top-p",
        "--stop",
        "--no-stream",
        "--out",
        "--timeout",
        "--dry-run",
        "--cache",
        "--system",
        "--session",
        "--new",
        "--n",
        "--logprobs",
        "--show",
        "--reset",
        "--undo",
        "--sessions",
        "--save",
        "--load",
        "prompt",
        "Send a message to /v1/chat.",
    ):
        assert flag in chat_help, flag
    complete_help = complete.__doc__ or ""
    assert "--best-of" in complete_help and "--random-seed" in complete_help
    assert "--system" not in complete_help and "--session" not in complete_help


def test_parser_is_built_when_the_function_has_none() -> None:
    def bare(line: str) -> None:
        """No decorators."""

    opts = parse_chat("-t 1", {}, default_model="palmyra-x4", cell=True)
    assert opts.temperatures == (1.0,) and opts.models == ("palmyra-x4",)


def test_decorators_work_on_a_registered_magic() -> None:
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand

    seen: list[ChatOptions] = []

    @magics_class
    class Demo(Magics):
        @chat_arguments
        @no_var_expand
        @line_cell_magic
        def chat(self, line: str, cell: str | None = None) -> None:
            """Chat with Palmyra."""
            assert self.shell is not None
            seen.append(
                parse_chat(line, self.shell.user_ns, default_model="m", cell=cell is not None)
            )

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.register_magics(Demo(shell))  # type: ignore[no-untyped-call]  # IPython's Magics
    shell.user_ns["persona"] = "You are {terse}"
    # (a line ending in "word?" would be IPython's help syntax and never reach the magic)
    shell.run_cell("%chat -s $persona Define RAG.", store_history=False)
    assert seen[-1].systems == ("You are {terse}",) and seen[-1].prompt == "Define RAG."
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        shell.run_cell("%%chat -t hot\nHello", store_history=False)
    assert err.getvalue() == (
        "UsageError: --temperature expects a number between 0 and 2, got 'hot'\n"
    )
    doc = shell.find_cell_magic("chat").__doc__ or ""
    assert "--temperature" in doc and "--load" in doc and "Chat with Palmyra." in doc


# --------------------------------------------------------------------------- tools


def test_tool_options() -> None:
    opts = pc(
        "--tools get_weather,add --tools add --tool-choice add --confirm --web-search "
        "--include-domain python.org,docs.python.org --include-domain python.org "
        "--exclude-domain example.com --schema Answer"
    )
    assert opts.tools == ("get_weather", "add")  # repeats and duplicates: once, in order
    assert (opts.tool_choice, opts.confirm, opts.schema) == ("add", True, "Answer")
    assert opts.web_search
    assert opts.include_domains == ("python.org", "docs.python.org")
    assert opts.exclude_domains == ("example.com",)
    assert builtin_tool(opts) == {
        "type": "web_search",
        "function": {
            "include_domains": ["python.org", "docs.python.org"],
            "exclude_domains": ["example.com"],
        },
    }


def test_tool_defaults_are_unset() -> None:
    opts = pc("")
    assert opts.tools == () and opts.tool_choice is None and not opts.confirm
    assert not opts.web_search and opts.include_domains == opts.exclude_domains == ()
    assert opts.graph_ids == () and not opts.subqueries and opts.llm_tool is None
    assert opts.translate_to is None and opts.translate_from is None and opts.schema is None
    assert builtin_tool(opts) is None


@pytest.mark.parametrize(
    ("line", "tool"),
    [
        (
            f"--graph {G1},{G2} --graph {G3} --subqueries",
            {"type": "graph", "function": {"graph_ids": [G1, G2, G3], "subqueries": True}},
        ),
        (f"--graph {G1}", {"type": "graph", "function": {"graph_ids": [G1], "subqueries": False}}),
        (
            "--llm-tool 'palmyra-med: Medical questions: dosage, symptoms'",
            {
                "type": "llm",
                "function": {
                    "description": "Medical questions: dosage, symptoms",
                    "model": "palmyra-med",
                },
            },
        ),
        (
            "--translate fr --source en",
            {
                "type": "translation",
                "function": {
                    "model": "palmyra-translate",
                    "formality": True,
                    "length_control": False,
                    "mask_profanity": False,
                    "source_language_code": "en",
                    "target_language_code": "fr",
                },
            },
        ),
        (
            "--web-search",
            {"type": "web_search", "function": {"include_domains": [], "exclude_domains": []}},
        ),
    ],
)
def test_builtin_tool_json(line: str, tool: dict[str, Any]) -> None:
    assert builtin_tool(pc(line)) == tool


def test_tool_choice_values_and_names_from_variables() -> None:
    assert pc("--translate pt-BR --tool-choice none").tool_choice == "none"
    assert pc("--tools a --tool-choice required").tool_choice == "required"
    assert pc("--tools {names}", names=["a", "b"]).tools == ("a", "b")
    assert pc("--tools a -n 1").tools == ("a",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--include-domain x.org", "--include-domain works only with --web-search"),
        ("--exclude-domain x.org", "--exclude-domain works only with --web-search"),
        ("--subqueries", "--subqueries works only with --graph ID"),
        ("--source en", "--source works only with --translate LANG"),
        ("--confirm", "--confirm works only with --tools (it asks before each call)"),
        ("--tool-choice auto", "--tool-choice works only with --tools or a built-in tool"),
        (
            "--tools a,b --tool-choice c",
            "--tool-choice expects auto, none, required or one of the --tools names (a, b), "
            "got 'c'",
        ),
        ("--web-search --tool-choice a", "--tool-choice expects auto, none, required, got 'a'"),
        ("--tools a,1b", "--tools expects names of Python functions, got '1b'"),
        ("--tools class", "--tools expects names of Python functions, got 'class'"),
        ("--tools", "--tools needs a value, e.g. --tools get_weather"),
        ("--graph ''", "--graph needs a value"),
        (
            "--llm-tool palmyra-med",
            "--llm-tool expects MODEL:DESCRIPTION, e.g. --llm-tool "
            "'palmyra-med:Medical questions', got 'palmyra-med'",
        ),
        (
            "--llm-tool ':Medical'",
            "--llm-tool expects MODEL:DESCRIPTION, e.g. --llm-tool "
            "'palmyra-med:Medical questions', got ':Medical'",
        ),
        (
            "--translate french",
            "--translate expects a language code such as fr or pt-BR, got 'french'",
        ),
        (
            "--translate fr --source 'en us'",
            "--source expects a language code such as fr or pt-BR, got 'en us'",
        ),
        (
            "--web-search --include-domain https://x.org",
            "--include-domain expects a domain such as python.org, got 'https://x.org'",
        ),
        (
            f"--web-search --graph {G1}",
            "Writer allows one built-in tool per request; got --web-search and --graph. "
            "Use one of them per cell",
        ),
        (
            f"--translate fr --llm-tool a:b --graph {G1}",
            "Writer allows one built-in tool per request; got --graph, --llm-tool and "
            "--translate. Use one of them per cell",
        ),
        (
            "--tools a -n 2",
            "--tools runs one conversation with your functions and cannot be combined with "
            "-n above 1",
        ),
        (
            "--tools a -t 0.1,0.2",
            "--tools runs one conversation with your functions and cannot be combined with a sweep",
        ),
        (
            "--schema 1x",
            "--schema expects the name of a pydantic model class or a JSON-schema dict, got '1x'",
        ),
        ("--tool x", "Unknown option --tool for %%chat; did you mean --tools or --tool-choice?"),
        ("--confirm=yes", "--confirm is a switch and takes no value"),
    ],
)
def test_tool_option_errors(line: str, message: str) -> None:
    assert error(pc, line) == message


def test_tool_options_are_chat_only_and_in_the_help() -> None:
    assert error(pk, "--tools a") == "--tools is a %%chat option; %%complete does not take it"
    chat_help = chat.__doc__ or ""
    for flag in (
        "--tools",
        "--tool-choice",
        "--confirm",
        "--web-search",
        "--include-domain",
        "--exclude-domain",
        "--graph",
        "--subqueries",
        "--llm-tool",
        "--translate",
        "--source",
        "--schema",
        "tools, built-in tools and structured output",
    ):
        assert flag in chat_help, flag
    assert "--schema" not in (complete.__doc__ or "")


def test_name_options_keep_references_to_objects() -> None:
    class Answer:
        pass

    def lookup() -> None:
        pass

    ns: dict[str, Any] = {"Answer": Answer, "lookup": lookup, "cfg": {"s": {}}, "which": "Answer"}
    assert pc("--schema {Answer}", **ns).schema == "Answer"
    assert pc("--schema $Answer", **ns).schema == "Answer"
    assert pc("--schema {cfg['s']}", **ns).schema == "cfg['s']"
    assert pc("--schema $which", **ns).schema == "Answer"  # a string variable gives its value
    assert pc("--tools $lookup --tools {lookup}", **ns).tools == ("lookup",)


# --------------------------------------------------------------------------- quotes, keys, limits


@pytest.mark.parametrize(
    ("line", "systems", "prompt"),
    [
        ("-s 'You're terse' Hi", ("You're terse",), "Hi"),
        ("-s “You are terse” Hi", ("You are terse",), "Hi"),
        ("-s ‘don’t’ Hi", ("don’t",), "Hi"),
        ("-s You're Hi", ("You're",), "Hi"),
        ("-s students’ work", ("students’",), "work"),
        ("-s'terse x' Hi", ("terse x",), "Hi"),
        ("--system='x y' Hi", ("x y",), "Hi"),
        ("-s “$persona” Hi", ("You are terse, and kind",), "Hi"),
        ("-s ‘$persona’ Hi", ("$persona",), "Hi"),
        ("“What is RAG?”", None, "What is RAG?"),
        ("What's up, it's 5 o'clock", None, "What's up, it's 5 o'clock"),
        ("-s 'terse' 'What is RAG?'", ("terse",), "What is RAG?"),
        ("-s 'terse' Bob's 'idea'", ("terse",), "Bob's 'idea'"),
    ],
)
def test_quotes_as_meant(line: str, systems: tuple[str, ...] | None, prompt: str) -> None:
    opts = pc(line, cell=False)
    assert (opts.systems, opts.prompt) == (systems, prompt)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-s 'x", "unclosed ' quote at column 10 ('x)"),
        ("-s ‘x", "unclosed ‘ quote at column 10 (‘x)"),
        ('-s "x', 'unclosed " quote at column 10 ("x)'),
        ("-s x” Hi", "closing ” quote at column 11 without an opening “"),
        ("-s 'a' b' Hi", "' at column 15 after a value that was already closed"),
    ],
)
def test_unbalanced_quotes_name_their_column(line: str, message: str) -> None:
    assert message in error(pc, line, False)


@pytest.mark.parametrize(
    "word",
    [
        "sk-test-SECRET-0123456789",
        "sk-live-a1b2c3d4e5f6g7h8",
        "Zx8kLm2Qp9Rt4Vw7Yb1Nc6Hd3Fg5Js0A",
    ],
)
def test_key_shaped_words_are_refused(word: str) -> None:
    message = error(pc, f"-s {word} Hi", False)
    assert "looks like an API key (as the value of -s" in message and word not in message
    assert "looks like an API key (on the line" in error(pc, f"Check {word}", False)


@pytest.mark.parametrize(
    "line",
    [
        "Compare sk-learn and sk-learn-intelex",
        "Is sk-learn-tutorial-notebooks good?",
        f"--graph {G1} Hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 is upper case only",
    ],
)
def test_words_that_merely_resemble_keys_pass(line: str) -> None:
    assert pc(line, cell=False).prompt is not None


def test_the_configured_key_is_refused() -> None:
    secrets = ("not-shaped-like-one",)
    with pytest.raises(UsageError) as info:
        parse_chat("Hi not-shaped-like-one", NS, default_model="x", cell=False, secrets=secrets)
    assert "not-shaped" not in str(info.value)


def test_repeated_sweep_values_are_sent_once() -> None:
    opts = pc("-t 0.5,0.5 --top-p 0.9 --top-p 0.9")
    assert opts.temperatures == (0.5,) and opts.top_ps == (0.9,) and not opts.is_sweep
    assert opts.warnings == (
        "--temperature, --top-p repeats a value: identical combinations are sent once, "
        "1 request instead of 4 (use -n N for several answers)",
    )


def test_max_sweep_counts_every_combination() -> None:
    line = "-m a,b -t 0.1,0.2 --top-p 0.5,0.6 -s x -s y"
    assert len(parse_chat(line, NS, default_model="m", cell=True, max_sweep=16).params) == 16
    with pytest.raises(UsageError, match=r"This sweep is 16 requests \(2 --model x 2 "):
        parse_chat(line, NS, default_model="m", cell=True, max_sweep=15)
