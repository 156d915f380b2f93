"""A real headless Chromium driven over the DevTools protocol, to look at the labeling UI.

Test helper only: logs in to Label Studio with the admin's password (a Django session cookie),
opens a page, waits until its text contains what is expected, and saves a screenshot.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import httpx


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def login_cookie(url: str, email: str, password: str) -> str:
    """The ``sessionid`` cookie of a web login (Django form with CSRF)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as http:
        page = http.get("/user/login/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, "login page has no CSRF token"
        resp = http.post(
            "/user/login/",
            data={"email": email, "password": password, "csrfmiddlewaretoken": match.group(1)},
            headers={"Referer": f"{url}/user/login/"},
        )
        assert resp.status_code in (302, 303), f"login failed: HTTP {resp.status_code}"
        session = http.cookies.get("sessionid")
        assert session, "no session cookie after login"
        return str(session)


class _CDP:
    def __init__(self, ws_url: str) -> None:
        import websocket  # websocket-client

        self.sock = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.sock.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.sock.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))


#: The taxonomy dropdown's tree nodes shown, and the JS expression for their texts.
TREE_NODE_ELEMENTS = "document.querySelectorAll('.ant-select-tree-treenode')"
TREE_NODES = f"Array.from({TREE_NODE_ELEMENTS}).map(e => e.innerText)"


class Browser:
    """Headless Chromium with a Label Studio session cookie (``with Browser(url, cookie) as b``)."""

    def __init__(self, url: str, session: str) -> None:
        self.url, self.session = url, session

    def __enter__(self) -> Browser:
        exe = chromium()
        assert exe, "chromium is not installed (apt-get install -y chromium)"
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-"))
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and self.proc.poll() is None, (
                "chromium did not start"
            )
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self.cdp = _CDP(target["webSocketDebuggerUrl"])
        self.cdp.call("Network.enable")
        self.cdp.call("Network.setCookie", name="sessionid", value=self.session, url=self.url)
        self.cdp.call("Page.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def js(self, expression: str) -> Any:
        res = self.cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, ok: Any, wait_s: float = 120.0) -> Any:
        """Evaluate ``expression`` until ``ok(value)`` holds or ``wait_s`` passed; last value."""
        deadline = time.monotonic() + wait_s
        value = self.js(expression)
        while not ok(value) and time.monotonic() < deadline:
            time.sleep(0.5)
            value = self.js(expression)
        return value

    def open(self, page: str, expect: list[str]) -> str:
        """Navigate; the body text once every string of ``expect`` shows (or the wait ended)."""
        self.cdp.call("Page.navigate", url=self.url + page)
        text = self.wait_for(
            "document.body ? document.body.innerText : ''",
            lambda t: bool(t) and all(e in t for e in expect),
        )
        return str(text or "")

    def search_taxonomy(self, query: str) -> list[str]:
        """Open the Taxonomy dropdown, type ``query`` in its search box; the nodes shown."""
        opener = (
            "document.querySelector('.htx-taxonomy .ant-select-selector')"
            ".dispatchEvent(new MouseEvent('mousedown', {bubbles: true}))"
        )
        probe = "(() => { const i = document.querySelector('input.lsf-taxonomy-search-input'); return !!i && i.offsetParent !== null; })()"
        found = False
        for _ in range(15):  # the editor may still be settling: click until the dropdown opens
            self.js(opener)
            found = bool(self.wait_for(probe, bool, 2))
            if found:
                break
        assert found, "the taxonomy dropdown has no search box"
        box = "document.querySelector('input.lsf-taxonomy-search-input')"
        nodes: Any = []
        for _ in range(6):  # the dropdown mounts in stages: type again if the text was lost
            time.sleep(1.0)
            if self.js(f"{box} ? {box}.value : ''") != query:
                self.js(f"{box}.focus(); {box}.select()")
                self.cdp.call("Input.insertText", text=query)
            nodes = self.wait_for(
                TREE_NODES,
                lambda v: bool(v) and any(query.lower() in x.lower() for x in v),
                10,
            )
            if nodes and any(query.lower() in x.lower() for x in nodes):
                break
        return [x for x in nodes or [] if x]

    def expand_taxonomy_node(self, title: str) -> list[str]:
        """Open the shown tree node whose text is ``title`` (the dropdown of ``search_taxonomy``
        is open); the nodes shown then."""
        click = (
            f"(() => {{ const n = Array.from({TREE_NODE_ELEMENTS})"
            f".find(e => e.innerText.trim() === {json.dumps(title)}); "
            "const s = n && n.querySelector('.ant-select-tree-switcher'); "
            "if (s) { s.dispatchEvent(new MouseEvent('mousedown', {bubbles: true})); s.click(); }"
            " return !!s; })()"
        )
        assert self.js(click), f"no tree node {title!r} to open"

        def opened(shown: Any) -> bool:  # a node is shown below the one opened
            texts = [x.strip() for x in shown or []]
            return title in texts and texts.index(title) < len(texts) - 1

        shown = self.wait_for(
            TREE_NODES,
            opened,
            10,
        )
        return [x.strip() for x in shown or [] if x]

    def screenshot(self, path: Path) -> Path:
        png = self.cdp.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(png["data"]))
        return path
