import stat
from pathlib import Path

import pytest

from autocoder.service.keys import PREFIX, KeyStore, KeyStoreError, digest


def test_add_check_revoke(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "service" / "keys.json")
    assert not store.any_active()
    key = store.add("survey")
    assert key.startswith(PREFIX) and len(key) > 40
    text = store.path.read_text()
    assert key not in text and digest(key) in text  # only the hash is stored
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.check(key) == "survey"
    assert store.check(key + "x") is None and store.check("") is None
    with pytest.raises(KeyStoreError, match="exists"):
        store.add("survey")
    other = KeyStore(store.path)  # another worker sees the revocation
    assert other.check(key) == "survey"
    store.revoke("survey")
    assert other.check(key) is None and not other.any_active()
    with pytest.raises(KeyStoreError, match="no active key"):
        store.revoke("survey")
    assert store.add("survey") != key  # a new key under the old name
    with pytest.raises(KeyStoreError, match="letters"):
        store.add("a b")
