"""What a result depends on besides its settings: hashes of the project's source files, so that a
rerun reuses work only while the code that made it is unchanged (``bench run``'s model
fingerprints, ``bench eval``'s scored batches)."""

from __future__ import annotations

import hashlib
import os
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_sha(paths) -> str:
    """One hash of the files' paths (relative to the project) and contents."""
    h = hashlib.sha256()
    for p in sorted(set(paths)):
        with open(p, "rb") as fh:
            h.update(os.path.relpath(p, PROJECT).encode() + b"\0" + fh.read())
    return h.hexdigest()[:16]


def _update(h, path: str) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, read a MiB at a time."""
    h = hashlib.sha256()
    _update(h, path)
    return h.hexdigest()


def folder_sha(folder: str) -> str:
    """One hash of every file under ``folder``: their paths inside it and their contents (where the
    folder lives does not count)."""
    h = hashlib.sha256()
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)
    for p in files:
        h.update(os.path.relpath(p, folder).encode() + b"\0")
        _update(h, p)
    return h.hexdigest()[:16]


def py_files(folder: str, suffixes: tuple[str, ...] = (".py",)) -> list[str]:
    """The source files under ``folder`` (those ending in one of ``suffixes``)."""
    return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(suffixes)]


def metrics_code() -> str:
    """The hash of every metric's source (the ``metrics`` package, its hand-written C++ kernels included)."""
    return files_sha(py_files(os.path.join(PROJECT, "metrics"), (".py", ".cpp", ".h")))


def written_at(path: str) -> str:
    """When a file was last written, as the logs say it ("2026-12-04 01:11", local time)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(path)))
