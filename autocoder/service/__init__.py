"""The coding service: the same coder behind an HTTP API (``autocoder serve``).

``keys`` (API keys, stored as hashes), ``limits`` (per-key token buckets), ``engine`` (the
loaded coder and the micro-batcher that puts concurrent requests through one model pass),
``jobs`` (uploaded files coded by the checkpointed batch coder), ``app`` (the FastAPI app and
its factory), ``run`` (``serve``: checks and uvicorn).
"""
