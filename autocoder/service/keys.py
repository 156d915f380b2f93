"""API keys: ``autocoder serve keys add|list|revoke``.

A key is shown once, when it is made; the store keeps its SHA-256 only (a JSON file with mode
0600 in the workspace), so a leaked store does not leak keys. Workers re-read the store when it
changes, so a revoked key stops working without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from autocoder.workspace import Workspace, file_lock

#: Every key starts with this, so a leaked one is easy to recognise (secret scanners).
PREFIX = "ac_"


class KeyStoreError(ValueError):
    """A key name that is invalid, taken or unknown."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    sha256: str
    created: float
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def keys_path(ws: Workspace) -> Path:
    return ws.root / "service" / "keys.json"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The workspace's API keys (hashes only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, KeyInfo] = {}

    @classmethod
    def of(cls, ws: Workspace) -> KeyStore:
        return cls(keys_path(ws))

    def _load(self) -> dict[str, KeyInfo]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return self._keys
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            raw = json.loads(self.path.read_text() or "{}")
            self._keys = {k["name"]: KeyInfo(**k) for k in raw.get("keys", [])}
            self._stamp = stamp
        return self._keys

    def _save(self, keys: dict[str, KeyInfo]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": [asdict(k) for k in keys.values()]}, fh, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def _locked(self) -> AbstractContextManager[None]:
        return file_lock(
            self.path.with_suffix(".lock"), exclusive=True, busy="the key store is being changed"
        )

    def add(self, name: str) -> str:
        """Make a key called ``name``; returns the key (the only time it is seen)."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise KeyStoreError(f"key name {name!r}: use letters, digits, '-' and '_'")
        with self._locked():
            keys = dict(self._load())
            if name in keys and keys[name].active:
                raise KeyStoreError(f"a key called {name!r} exists; revoke it first")
            key = PREFIX + secrets.token_urlsafe(32)
            keys[name] = KeyInfo(name, digest(key), time.time())
            self._save(keys)
        return key

    def revoke(self, name: str) -> KeyInfo:
        with self._locked():
            keys = dict(self._load())
            info = keys.get(name)
            if info is None or not info.active:
                raise KeyStoreError(f"no active key called {name!r}")
            keys[name] = KeyInfo(info.name, info.sha256, info.created, time.time())
            self._save(keys)
        return keys[name]

    def list(self) -> list[KeyInfo]:
        return sorted(self._load().values(), key=lambda k: k.created)

    def any_active(self) -> bool:
        return any(k.active for k in self._load().values())

    def check(self, key: str) -> str | None:
        """The name of the active key ``key``, else None (compared in constant time)."""
        found = None
        wanted = digest(key)
        for info in self._load().values():
            if hmac.compare_digest(info.sha256, wanted) and info.active:
                found = info.name
        return found
