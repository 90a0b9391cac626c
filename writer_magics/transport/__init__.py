"""Stage 3, the wire: a Request in, typed events out.

In: a ``Request`` (endpoint + JSON body) and the client settings. Out: typed events
decoded from SSE or JSON (``events``), sent by the kernel's one httpx client with
retries and HTTP status -> one-line ``WriterError`` (``client``), on the private loop
thread that also bounds how many requests run at once (``loop``). ``cache`` answers
identical requests (and replay mode) from disk; ``models`` is ``GET /v1/models`` and
the per-kernel catalog Tab completion reads. Knows nothing of display or answers.
"""
