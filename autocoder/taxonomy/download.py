"""Fetch official taxonomy releases, and find the files of a release in a folder or zip.

``download_release("onet", dest)`` downloads the O*NET database (text layout) from the O*NET
Resource Center. ESCO has no stable direct download URL, so for ESCO the user downloads the CSV
export by hand. Without a connection a :class:`DownloadError` says what to do instead.

:class:`ReleaseFiles` is shared by the importers: it finds a release file by name in a folder
(or one folder below it) or inside a zip (at any depth, e.g. ``db_29_2_text/...``).
"""

from __future__ import annotations

import http.client
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

ONET_URL = "https://www.onetcenter.org/dl_files/database/db_29_2_text.zip"
ESCO_DOWNLOAD_PAGE = "https://esco.ec.europa.eu/en/use-esco/download"
RELEASES = ("onet", "esco")


class ReleaseError(ValueError):
    """A release file is not what it claims: a ``.zip`` that is no zip, a damaged zip, a
    version that its own files contradict."""


class DownloadError(RuntimeError):
    """A release could not be downloaded; the message says what to do instead."""


def _offline_help(name: str, url: str, problem: str) -> str:
    return (
        f"could not download the {name} release from {url}: {problem}.\n"
        f"Download {url} on a machine with internet access, copy it here and run "
        f"`autocoder taxonomy import {name} PATH` (PATH = the zip or its unpacked folder), "
        f"or build the offline starter with `autocoder taxonomy starter {name}`."
    )


def download_release(
    name: str,
    dest_dir: str | Path,
    *,
    timeout: float = 20.0,
    url: str | None = None,
) -> Path:
    """Download the official ``name`` release into ``dest_dir`` and return the saved zip.

    ``url`` overrides the publisher's address (mirrors, tests). Raises :class:`DownloadError`
    when offline or when the server refuses, and for ESCO, which must be downloaded by hand.
    """
    if name == "esco":
        raise DownloadError(
            "ESCO has no stable direct download URL. Download the ESCO CSV export (English, "
            f"classification + relations) from {ESCO_DOWNLOAD_PAGE}, then run "
            "`autocoder taxonomy import esco PATH` (PATH = the zip or its unpacked folder)."
        )
    if name != "onet":
        raise ValueError(f"unknown release {name!r}; choose one of {', '.join(RELEASES)}")
    source = url or ONET_URL
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    filename = urllib.parse.urlsplit(source).path.rstrip("/").rsplit("/", 1)[-1]
    filename = filename or "onet_release.zip"
    if not filename.endswith(".zip"):
        filename += ".zip"
    target = dest / filename
    partial = target.with_name(target.name + ".part")
    request = urllib.request.Request(source, headers={"User-Agent": "autocoder"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            with partial.open("wb") as fh:
                shutil.copyfileobj(response, fh, length=1 << 20)
    except urllib.error.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(_offline_help(name, source, f"HTTP {exc.code} {exc.reason}")) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(_offline_help(name, source, f"no connection ({reason})")) from exc
    if not zipfile.is_zipfile(partial):
        partial.unlink(missing_ok=True)
        raise DownloadError(_offline_help(name, source, "the server did not send a zip file"))
    partial.replace(target)
    return target


def open_verified_zip(path: Path) -> zipfile.ZipFile:
    """``path`` opened as a zip whose every member passes its CRC check; ``ReleaseError``
    for a file that is not a zip (an HTML error page saved as ``.zip``) or a damaged one.
    Never falls back to another release lying next to it."""
    if not zipfile.is_zipfile(path):
        raise ReleaseError(
            f"{path} is not a zip file (a failed or partial download?); download the release "
            "again, or give its unpacked folder"
        )
    try:
        archive = zipfile.ZipFile(path)
        bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise ReleaseError(f"{path} is a damaged zip file ({exc}); download it again") from exc
    if bad is not None:
        archive.close()
        raise ReleaseError(
            f"{path} is a damaged zip file: member {bad!r} fails its CRC check; download it again"
        )
    return archive


class ReleaseFiles:
    """The files of a release given as a folder, a zip, or one file inside the release folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"release not found: {self.path}")
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}  # basename -> member path (the shallowest one)
        if self.path.is_file() and (
            self.path.suffix.lower() == ".zip" or zipfile.is_zipfile(self.path)
        ):
            self._zip = open_verified_zip(self.path)
            for member in sorted(self._zip.namelist(), key=lambda m: (m.count("/"), m)):
                if member.endswith("/") or member.startswith("__MACOSX/"):
                    continue
                self._members.setdefault(member.rsplit("/", 1)[-1], member)
        elif self.path.is_file():  # one file of an unpacked release: its folder
            self.path = self.path.parent

    def __enter__(self) -> ReleaseFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def names(self) -> list[str]:
        """Every file path in the release (zip members or paths relative to the folder)."""
        if self._zip is not None:
            return list(self._members.values())
        return [
            str(p.relative_to(self.path))
            for pattern in ("*", "*/*")
            for p in sorted(self.path.glob(pattern))
            if p.is_file()
        ]

    def find(self, *names: str) -> str | None:
        """The location of the first of ``names`` present (folder or one level down), else None."""
        for name in names:
            if self._zip is not None:
                if name in self._members:
                    return self._members[name]
                continue
            direct = self.path / name
            if direct.is_file():
                return name
            below = sorted(p for p in self.path.glob(f"*/{name}") if p.is_file())
            if below:
                return str(below[0].relative_to(self.path))
        return None

    def read_bytes(self, location: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(location)
        return (self.path / location).read_bytes()

    def display(self, location: str) -> str:
        """A path for messages: ``release.zip!member`` or the file path."""
        if self._zip is not None:
            return f"{self.path}!{location}"
        return str(self.path / location)
