"""What a result depends on besides its settings: hashes of the project's source files, so that a
rerun reuses work only while the code that made it is unchanged (``bench run``'s model
fingerprints, ``bench eval``'s scored batches), and the packages and machine that made it (each
run's and eval's ``config.json``)."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
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


def package_versions() -> dict:
    """Python's version and those of the packages a result's numbers depend on (the ones installed)."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for p in (
        "fusionbench",
        "torch",
        "numpy",
        "scipy",
        "pandas",
        "h5py",
        "nibabel",
        "matplotlib",
        "diffusers",
        "FrEIA",
        "nilearn",
        "segmentation-models-pytorch",
    ):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    """The processor's name as the OS gives it, with its vendor, family, model and stepping where Linux
    gives them (/proc/cpuinfo: "Intel(R) Xeon(R) Processor (GenuineIntel, family 6, model 167, stepping
    1)": a virtual machine's name alone can hide which processor it runs on), else
    macOS's ``machdep.cpu.brand_string`` (e.g. "Apple M2 Pro", where :func:`platform.processor` says
    "arm"), else :func:`platform.processor`, else the machine type."""
    fields: dict = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if not key and fields:  # the first processor's block ends
                    break
                fields.setdefault(key, value)
    except OSError:
        pass
    name = fields.get("model name") or _darwin_brand() or platform.processor() or platform.machine()
    ids = [fields["vendor_id"]] if fields.get("vendor_id") else []
    ids += [
        f"{label} {fields[key]}"
        for label, key in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))
        if key in fields
    ]
    return f"{name} ({', '.join(ids)})" if ids else name


def _darwin_brand() -> str:
    """The processor's name from ``sysctl`` on macOS; "" elsewhere or where it does not answer."""
    if sys.platform != "darwin":
        return ""
    import subprocess

    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def device_info(dev) -> dict:
    """Where a result was computed: the torch device, the OS, the processor and the vector instructions
    PyTorch's CPU kernels use on it (``cpu_capability``: e.g. AVX512, AVX2), its threads, and the GPU's
    name on CUDA. Training amplifies the last bits in which processor types differ (README, "The main
    command, measured"), so a run's trained scores are comparable bit for bit only with one made on
    the same processor type; these fields say which."""
    import torch

    info = {
        "device": str(dev),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info
