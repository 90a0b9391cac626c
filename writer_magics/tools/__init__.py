"""The side loop of function calling: an answer in, the next Request out.

In: ``--tools`` / built-in tool options and the kernel's namespace. Out: the tool
JSON and ``ChatFeatures`` for the request (``prepare``, ``functions``: a Python
signature -> JSON schema; ``builtin``: Writer's built-in tools), and the rounds that
run the model's calls and send the results back until it answers (``rounds``).
"""
