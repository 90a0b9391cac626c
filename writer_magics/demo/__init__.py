"""``python -m writer_magics demo``: beside the stages, may use any of them.

In: the quickstart notebook and the bundled server. Out: the notebook run in a real
kernel (``run``) with each cell's streamed output echoed live to the terminal
(``stream``).
"""
