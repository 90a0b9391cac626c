"""The built-in vocabulary: sentence templates, code snippets and word lists.

Template syntax: ``{a|b|c}`` is a sampled choice (first option most likely) and
``$name`` is replaced by a value taken from the conversation (inserted verbatim,
never parsed as a template). Kept as immutable tuples: this module holds data only.
"""

from __future__ import annotations

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just let lets like me more most my myself no nor not now of off on
    once only or other our ours out over own please same she should so some such tell than that
    the their theirs them then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours
    yourself give make write show explain describe list create generate need want using use
    help know get one two three four five six seven eight nine ten something thing things
    short brief quick bullet bullets points point ideas idea steps step code example
    examples function program script snippet haiku poem again more recommend suggest summarise
    summarize find translate draft""".split()  # noqa: SIM905
)

NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}

CODE_WORDS = frozenset(
    ("code", "function", "program", "script", "snippet", "implement", "regex", "class", "method")
)
LANGUAGE_DISPLAY = {"python": "Python", "javascript": "JavaScript", "sql": "SQL", "bash": "Bash"}
LIST_WORDS = frozenset(
    "list bullet bullets points steps ideas options tips ways reasons".split()  # noqa: SIM905
)
POEM_WORDS = frozenset(("haiku", "poem", "verse", "rhyme", "limerick"))

OPENINGS = (
    "{Here is|Here's} a {short|brief|quick|concise} {answer|overview|take} on **$topic**.",
    "{Good|Great|Interesting} question about **$topic**.",
    "Let's {look at|talk about|unpack} **$topic**.",
    "{Sure|Certainly|Of course}, {here are|these are} {some|a few} thoughts on **$topic**.",
)
PERSONA_OPENINGS = (
    "{Speaking|Answering|Writing} as $persona, here is {my|a} {take|view|answer} on **$topic**.",
    "As $persona, I {would|will|can} {say|share|offer} this about **$topic**.",
)
INSTRUCTED_OPENINGS = (
    'Following {your|the} {instructions|guidance} ("$system"), here is {my|a} '
    "{take|view|answer} on **$topic**.",
)
HISTORY_LINES = (
    "This is turn $turn of our conversation; {earlier|before|previously} you asked about "
    "*$earlier*, so I {will|can} {build on|connect to|keep in mind} that.",
    "{Building on|Following up on|Continuing from} your {earlier|previous|first} question "
    "about *$earlier* (turn $turn {now|so far}), {here is|this is} {the next|a further} step.",
)
SENTENCES = (
    "A good first step is to {define|clarify|pin down} what *$kw* {means|covers} in your "
    "{context|project|situation}.",
    "Most {teams|people|projects} {find|discover|notice} that $kw {works best|pays off} when it "
    "is {kept|made} {simple|small|explicit}.",
    "It helps to {compare|contrast} $kw with {a simpler baseline|the alternatives} before "
    "{committing|deciding}.",
    "Keep an eye on {cost|latency|quality}: $kw {often|usually|sometimes} trades one for another.",
    "Write down {two|three|a few} {examples|cases} where $kw {matters|applies}, and {test|check} "
    "them {early|first}.",
    "The {main|key|central} idea behind $kw is {clarity|consistency|feedback}.",
    "{In practice|Day to day|Over time}, $kw {rewards|benefits from} {small|steady|careful} "
    "{iterations|changes|improvements}.",
    "If $kw {feels|seems} {overwhelming|vague|abstract}, start with the {smallest|simplest} "
    "{version|piece} that {works|helps}.",
    "{Ask|Consider} who {relies|depends} on $kw and what they {need|expect} from it.",
    "A {common|frequent|classic} {mistake|pitfall} with $kw is {skipping|rushing} the "
    "{basics|details|measurement}.",
)
LIST_INTROS = (
    "{Here are|Below are} $count {key points|ideas|suggestions}:",
    "{Consider|Try} these $count {points|ideas|steps}:",
)
CLOSINGS = (
    "{In short|Overall|To sum up}, **$kw** {is worth|deserves} a {careful|closer|second} look.",
    "{Would you like|Shall I give you|Do you want} more {detail|examples} on *$kw*?",
    "{Let me know|Tell me} if you {want|would like} me to {expand on|go deeper into} *$kw*.",
)
POEM = (
    "$Kw {in the|under the|beneath the} {morning|evening|quiet} {light|rain|air},\n"
    "{small|soft|slow} {words|steps|thoughts} {drift|gather|settle} {by|near|around},\n"
    "{and|while|as} $kw2 {waits|listens|returns}."
)
CODE_INTROS = (
    "{Here is|Below is} a {small|short|minimal} $language {example|sketch|snippet} for *$kw*:",
    "A {minimal|simple|compact} $language {version|example} {looks like|could look like} this:",
)
CODE_OUTROS = (
    "{Adapt|Rename|Extend} `$name` to {fit|match} your {data|project|needs}.",
    "{Run|Try} it {once|first} with a {tiny|small} input to {check|confirm} the {output|result}.",
)
CODE = {
    "python": (
        "def $name(items: list[str]) -> dict[str, int]:\n"
        '    """Count how often each $kw item appears."""\n'
        "    counts: dict[str, int] = {}\n"
        "    for item in items:\n"
        "        counts[item] = counts.get(item, 0) + 1\n"
        "    return counts\n"
        "\n"
        '\nprint($name(["$kw", "$kw2", "$kw"]))\n'
    ),
    "javascript": (
        "function $camel(items) {\n"
        "  // Count how often each $kw item appears.\n"
        "  const counts = new Map();\n"
        "  for (const item of items) {\n"
        "    counts.set(item, (counts.get(item) ?? 0) + 1);\n"
        "  }\n"
        "  return counts;\n"
        "}\n"
        "\n"
        'console.log($camel(["$kw", "$kw2", "$kw"]));\n'
    ),
    "sql": (
        "SELECT $kw, COUNT(*) AS total\nFROM $kw2\nGROUP BY $kw\nORDER BY total DESC\nLIMIT 10;\n"
    ),
    "bash": (
        "#!/usr/bin/env bash\n"
        "set -euo pipefail\n"
        "# Count lines mentioning $kw in each file.\n"
        'for f in "$@"; do\n'
        '  echo "$f: $(grep -c "$kw" "$f")"\n'
        "done\n"
    ),
}
LANGUAGE_WORDS = {
    "python": ("python",),
    "javascript": ("javascript", "js", "typescript", "node"),
    "sql": ("sql", "query", "database", "table"),
    "bash": ("bash", "shell", "terminal"),
}
TOOL_RESULT_LINES = (
    '{According to|Based on} the `$name` tool, the result is: "$result".',
    'The `$name` tool {returned|reported|says}: "$result".',
)
TOOL_RESULT_FOLLOWUPS = (
    "{Let me know|Tell me} if you {need|want} anything else.",
    "{I hope|Hopefully} that {helps|answers your question}.",
)
COMPLETION_OPENINGS = (
    "{Here is|Here's} {one|a} {take|draft} on $topic.",
    "$Topic, {in a few words|briefly|in short}:",
)
#: ``$count`` is the number and noun of what the tool data holds ("3 sources", "1 file").
WEB_LINES = ("I {searched|checked} the web for **$topic** and found $count.",)
GRAPH_LINES = (
    "{According to|Based on} the knowledge graph, **$topic** {appears|is covered} in $count.",
)
LLM_LINES = ("I {asked|consulted} `$model` about **$topic**.",)

TRANSLATIONS = {
    "fr": {
        "hello": "bonjour",
        "world": "monde",
        "the": "le",
        "and": "et",
        "is": "est",
        "good": "bon",
        "morning": "matin",
        "thank": "merci",
        "you": "vous",
        "yes": "oui",
        "no": "non",
        "cat": "chat",
        "house": "maison",
        "day": "jour",
        "friend": "ami",
    },
    "es": {
        "hello": "hola",
        "world": "mundo",
        "the": "el",
        "and": "y",
        "is": "es",
        "good": "bueno",
        "morning": "mañana",
        "thank": "gracias",
        "you": "tú",
        "yes": "sí",
        "no": "no",
        "cat": "gato",
        "house": "casa",
        "day": "día",
        "friend": "amigo",
    },
    "de": {
        "hello": "hallo",
        "world": "Welt",
        "the": "die",
        "and": "und",
        "is": "ist",
        "good": "gut",
        "morning": "Morgen",
        "thank": "danke",
        "you": "du",
        "yes": "ja",
        "no": "nein",
        "cat": "Katze",
        "house": "Haus",
        "day": "Tag",
        "friend": "Freund",
    },
}
LANGUAGE_NAMES = {
    "french": "fr",
    "spanish": "es",
    "german": "de",
    "italian": "it",
    "portuguese": "pt",
    "japanese": "ja",
    "english": "en",
    "chinese": "zh",
}
