"""Owner records: who made a leftover (pid, process start time, host, boot and a random
token), and whether that process provably runs no more.  Names never make a path
ours; an owner record does.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any

_TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")


def new_token() -> str:
    """A random token (16 hex digits) naming and proving one leftover."""
    return secrets.token_hex(8)


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def owner_record(token: str | None = None) -> dict:
    """Who is making a leftover now: this process (pid, start time, host, boot) and a
    random ``token`` (new unless given)."""
    return {
        "tool": "condensation",
        "pid": os.getpid(),
        "start": _start_time(os.getpid()),
        "host": socket.gethostname(),
        "boot": _boot_id(),
        "token": token or new_token(),
    }


def valid_owner(rec: Any) -> dict | None:
    """``rec`` if it is an owner record as :func:`owner_record` writes it, else None."""
    if not isinstance(rec, dict) or rec.get("tool") != "condensation":
        return None
    pid, token = rec.get("pid"), rec.get("token")
    if type(pid) is not int or pid <= 0 or not isinstance(token, str):
        return None
    if not _TOKEN_RE.match(token) or not isinstance(rec.get("host"), str):
        return None
    if not all(rec.get(k) is None or isinstance(rec.get(k), str) for k in ("start", "boot")):
        return None
    return rec


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def is_this_process(rec: dict) -> bool:
    """The owner record ``rec`` was written by this very process."""
    return (
        rec["pid"] == os.getpid()
        and rec["host"] == socket.gethostname()
        and rec.get("start") == _start_time(os.getpid())
    )


def owner_gone(rec: dict) -> bool:
    """True only when the process of the owner record ``rec`` provably runs no more:
    same host, and either another boot, or its pid is dead, or that pid now belongs
    to a process started at another time (pid reuse).  Unknown means alive."""
    if rec["host"] != socket.gethostname() or is_this_process(rec):
        return False
    boot = _boot_id()
    if boot is not None and rec.get("boot") is not None and rec["boot"] != boot:
        return True
    if not _alive(rec["pid"]):
        return True
    start = _start_time(rec["pid"])
    return start is not None and rec.get("start") is not None and start != rec["start"]


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_owner(path: str | Path) -> dict | None:
    """The owner record stored as JSON in the file ``path``, or None (not ours)."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return None
    return valid_owner(read_json_file(p))
