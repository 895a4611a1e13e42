"""Atomic file writes: write a temporary file in the same folder, then ``os.replace`` it."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import time


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(d, exist_ok=True)
    tmp = _new_file(os.path.join(d, f".{os.path.basename(path)}."), f".tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        _raise_if_disk_full(e, path)  # checked while the partial file still fills the disk
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _raise_if_disk_full(e: BaseException, path: str) -> None:
    """Raise one clear error naming ``path`` if writing it failed for a full disk. Each writer says so
    its own way: Python's ``open().write`` as ENOSPC, NumPy's ``np.save`` as "230400 requested and
    71648 written", ``torch.save`` as "[enforce fail at inline_container.cc:672] . unexpected pos 576
    vs 534", which names neither the file nor the cause; the space left tells them all apart."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if getattr(e, "errno", None) == errno.ENOSPC or (free is not None and free < 1 << 20):
        left = f" ({free} bytes free in {folder})" if free is not None else ""
        raise OSError(
            f"could not write {path}: no space left on the device{left}; free some space and run the same command again"
        ) from e


# The names atomic_path gives its temporary files: ".best.pt.1f2e3d4c.tmp", ".samples.npy.1f2e3d4c.tmp.npy".
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def remove_temporaries(folder: str, log=None) -> int:
    """Remove the temporary files that commands killed outright (SIGKILL: the kernel's out-of-memory
    killer, ``kill -9``) left under ``folder`` mid-write, and say how many (to ``log``). Only for a folder
    this process holds the lock of (``with folder_lock(...) as held``, where ``held``), so no file is
    another command's write in progress: the lock's holder is the only writer of the whole folder."""
    found = []
    for d, _, files in os.walk(folder):
        found += [os.path.join(d, f) for f in files if _TEMPORARY.match(f)]
    size = 0
    for p in found:
        with contextlib.suppress(OSError):
            size += os.path.getsize(p)
            os.remove(p)
    if found and log is not None:
        log(f"removed {len(found)} unfinished file(s) a killed command left in {folder} ({size / 2**20:.1f} MiB)")
    return len(found)


def _new_file(prefix: str, suffix: str) -> str:
    """A new empty file ``PREFIX<random>SUFFIX``, made with the mode every other file gets (0666
    less the user's umask: 0644 as a rule). ``tempfile.mkstemp`` makes 0600 files, and every
    table, figure and checkpoint replaced by one was unreadable to the user's group and others."""
    for _ in range(100):
        name = f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name like {prefix}XXXXXXXX{suffix}")


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path: str, obj) -> None:
    """``obj`` as standard JSON: NaN and infinities, which Python's json writes as bare ``NaN`` /
    ``Infinity`` that other readers (jq, JavaScript, R's jsonlite) reject, are written as ``null``."""
    write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def check_writable(folder: str) -> None:
    """Raise a clear error unless ``folder`` can be created and written to."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        top = os.path.abspath(folder)
        while not os.path.exists(top):
            top = os.path.dirname(top)
        why = f"{top} is a file, not a folder" if not os.path.isdir(top) else e.strerror
        raise PermissionError(f"results folder {folder!r} is not writable ({why}); choose another with --out") from None


def folder_config(folder: str) -> dict:
    """The ``config.json`` a ``bench run`` or ``bench eval`` wrote in ``folder``, or ``{}`` (none,
    unreadable, or not an object)."""
    try:
        with open(os.path.join(folder, "config.json")) as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def folder_kind(folder: str) -> str:
    """What ``folder`` is to a command that writes results into it: ``"new"`` (missing, or holding
    only a lock and ``bench eval``'s batch cache), ``"run"`` (a ``bench run``'s: its ``config.json``
    holds the config, or it has ``run.json``), ``"eval"`` (its ``config.json`` names the images),
    ``"seeds"`` (``bench run --seeds``' tables over seeds: its ``config.json`` names the seeds and
    their runs), ``"ablation"`` (``bench ablate``'s: its sweeps' ``ablation_<param>.json`` records, or
    a value's ``<param>-<value>/fusioninn/model.json``), or ``"other"`` (files of someone else's,
    which no command may replace or clear).
    Each command writes only into a new folder or one of its own kind."""
    if not os.path.isdir(folder) or not [f for f in os.listdir(folder) if f not in (".lock", ".scored")]:
        return "new"
    config = folder_config(folder)
    if "config" in config or os.path.isfile(os.path.join(folder, "run.json")):
        return "run"
    if "seeds" in config and "runs" in config:
        return "seeds"
    if "x1" in config and "fused" in config:
        return "eval"
    if not os.path.exists(os.path.join(folder, "config.json")) and (
        glob.glob(os.path.join(glob.escape(folder), "ablation_*.json"))
        or glob.glob(os.path.join(glob.escape(folder), "*-*", "fusioninn", "model.json"))
    ):
        return "ablation"
    return "other"


def first_missing(path: str) -> str | None:
    """The topmost folder of ``path`` that does not exist yet (what creating it would make), or None."""
    path, top = os.path.abspath(path), None
    while not os.path.exists(path):
        top, path = path, os.path.dirname(path)
    return top


@contextlib.contextmanager
def folder_lock(folder: str, hint: str):
    """Hold ``folder`` for this process alone while the block runs: an exclusive ``flock`` on
    ``folder/.lock``, which the operating system releases however the process ends (Ctrl-C, kill,
    crash), so a stopped run never leaves a stale lock. A second ``bench`` writing the same folder
    gets ``RuntimeError`` naming the holder and ``hint`` instead of mixing its files into the
    first's. The file is removed on release. Without ``fcntl`` (not POSIX) or ``flock`` (some network
    mounts) nothing is locked. Yields whether the folder is held (what :func:`remove_temporaries` needs)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, ".lock")
    while True:
        try:
            fh = open(path, "a+")
        except OSError as e:
            if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            raise PermissionError(  # bench table on a folder of a read-only checkout or someone else's
                f"{folder} is not writable ({e.strerror}); the command writes its files there: copy the folder "
                "somewhere writable and give that"
            ) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RuntimeError(f"{folder} is in use by {holder}; {hint}") from None
        except OSError:  # a file system without flock (some network mounts): work unlocked, as before
            fh.close()
            with contextlib.suppress(OSError):
                os.remove(path)
            yield False
            return
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder removed between our open and our lock
            break
        fh.close()
    try:
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"bench (pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})")
            fh.flush()
        except OSError as e:
            _raise_if_disk_full(e, path)
            raise
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        with contextlib.suppress(OSError):  # a note the full disk kept in the buffer: the file is gone
            fh.close()
