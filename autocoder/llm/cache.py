"""Disk cache of LLM answers, keyed by prompt version + model + the full request.

The key hashes the prompt id (``rag_pick.v1``), the model id (endpoint + model name), the rendered
messages, the output constraint (schema) and the sampling parameters, so a changed
template, model or setting never returns a stale answer. Values are the parsed JSON answers.
SQLite in WAL mode; safe to share between the threads of one process.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def cache_key(prompt_id: str, model_id: str, request: dict[str, Any]) -> str:
    payload = json.dumps(
        {"prompt": prompt_id, "model": model_id, "request": request},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LLMCache:
    """``key -> JSON answer`` in ``<directory>/llm_cache.sqlite``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "llm_cache.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS answers ("
                "key TEXT PRIMARY KEY, prompt TEXT, model TEXT, answer TEXT, created REAL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT answer FROM answers WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else json.loads(row[0])

    def put(
        self, key: str, answer: dict[str, Any], *, prompt_id: str = "", model_id: str = ""
    ) -> None:
        text = json.dumps(answer, ensure_ascii=False)
        with self._lock:
            conn = self._connection()
            conn.execute(
                "INSERT OR REPLACE INTO answers (key, prompt, model, answer, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, prompt_id, model_id, text, time.time()),
            )
            conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            conn = self._connection()
            conn.execute("DELETE FROM answers")
            conn.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
