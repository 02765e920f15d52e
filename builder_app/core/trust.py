"""Which custom code the user trusts: content hashes kept in the user's settings.

Trust is given to a file's exact text (its SHA-256), never to a project or a file
name: a changed file is a new text and asks again. The hashes are kept in a plain
JSON file, ``trusted_code.json`` in the app's configuration directory
(``$XDG_CONFIG_HOME/builder-app``, ``~/.config/builder-app``, or on Windows
``%APPDATA%/builder-app``); ``BUILDER_APP_CONFIG_DIR`` overrides the directory
(tests do). No Qt here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from builder_app.core.atomic import write_atomically
from builder_app.core.custom_code import CodeFile, class_names, describe

#: The environment variable that moves the settings directory.
CONFIG_DIR_ENV = "BUILDER_APP_CONFIG_DIR"
TRUST_FILE = "trusted_code.json"
_MAX_SETTINGS_BYTES = 4 * 1024 * 1024


class UntrustedCodeError(PermissionError):
    """Code would run that the user has not trusted; the message names the files."""


def config_dir() -> Path:
    """The app's configuration directory (not created here)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "builder-app"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "builder-app"


def _settings_path() -> Path:
    return config_dir() / TRUST_FILE


def _read() -> dict[str, dict]:
    path = _settings_path()
    try:
        if path.stat().st_size > _MAX_SETTINGS_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    trusted = data.get("trusted") if isinstance(data, dict) else None
    return {k: v for k, v in trusted.items() if isinstance(v, dict)} if isinstance(trusted, dict) else {}


def is_trusted(file: CodeFile) -> bool:
    """Whether the user trusts this exact text."""
    return file.sha256 in _read()


def untrusted(files: Iterable[CodeFile]) -> list[CodeFile]:
    """The files whose text the user has not trusted."""
    trusted = _read()
    return [f for f in files if f.sha256 not in trusted]


def trust(files: Iterable[CodeFile]) -> None:
    """Records the user's trust in these texts (by hash, with file name and classes as a reminder)."""
    trusted = _read()
    for file in files:
        try:
            classes = class_names(file) if isinstance(file, CodeFile) else []
        except ValueError:
            classes = []
        trusted[file.sha256] = {"file": file.name, "classes": classes, "trusted_at": int(time.time())}
    path = _settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"trusted": trusted}, indent=1, sort_keys=True).encode("utf-8")
    write_atomically(path, lambda handle: handle.write(data))


def revoke(files: Iterable[CodeFile]) -> None:
    """Forgets the trust in these texts."""
    trusted = _read()
    hashes = {f.sha256 for f in files}
    kept = {k: v for k, v in trusted.items() if k not in hashes}
    if kept != trusted:
        data = json.dumps({"trusted": kept}, indent=1, sort_keys=True).encode("utf-8")
        write_atomically(_settings_path(), lambda handle: handle.write(data))


def untrusted_message(files: Sequence[CodeFile], how: str = "run again with --trust") -> str:
    """One line: which files (and classes) are not trusted, and how to trust them."""
    changed = ""
    known = {v.get("file") for v in _read().values()}
    if any(f.name in known for f in files):
        changed = " (changed since it was trusted)" if len(files) == 1 else " (some changed since trusted)"
    return f"the project's custom code is not trusted{changed}: {describe(files)}; {how}"


def check(files: Sequence[CodeFile], grant: bool = False) -> None:
    """Makes sure the user trusts these files: ``grant`` records the trust first.

    Raises:
        UntrustedCodeError: Some file is not trusted and ``grant`` is False.
    """
    if grant:
        trust(files)
        return
    missing = untrusted(files)
    if missing:
        raise UntrustedCodeError(untrusted_message(missing))
