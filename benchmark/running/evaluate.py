"""``bench eval``: score fused images made by any software against their sources.

The same file stem in the x1, x2 and fused folders makes one triple. Several fused folders
(``--fused mine=DIR1 --fused theirs=DIR2``) are ranked against each other. Writes the same
``scores.csv`` (with a ``name`` column holding the file stem) and leaderboards as ``bench run``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.atomic import (
    check_writable,
    first_missing,
    folder_kind,
    folder_lock,
    remove_temporaries,
    write_json,
    write_text,
)
from benchmark.data import imageio
from benchmark.data.imageio import list_images, probe_image, read_image, read_labels, stem
from benchmark.data.regions import tumour_boxes
from benchmark.distributed import pick_device
from benchmark.provenance import device_info, files_sha, metrics_code, package_versions
from benchmark.running import pool
from benchmark.running.pool import eval_workers
from metrics import _compile, _native, sharing_sources
from metrics.colour import colour_rules, colour_score
from metrics.lineage import LineageImages
from metrics.profiles import get_profile
from metrics.registry import METRICS, column_names, resolve_metrics
from metrics.scoring import is_nan, min_image_size, score

if TYPE_CHECKING:
    import pandas

log = logging.getLogger("fusionbench.metrics")
# Pixels scored at once: a batch of 16 BraTS slices (240 x 240) or 512 x 512 images fits, and larger
# images are scored fewer at a time, so that memory follows this budget, not the image size: four
# 1024 x 1024 triples with every lineage peaked at 4.0 GB here, so sixteen 2048 x 2048 ones would have
# needed ~60 GB. Scores are the same either way (a batch equals its images scored one by one).
EVAL_PIXELS = 4 * 1024 * 1024


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _listing(names: list[str], shown: int = 10) -> str:
    """The first ``shown`` names, and how many more there are."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _renaming(missing: list[str], extra: list[str]) -> str | None:
    """Where every unmatched fused name is an unmatched source name with one text before and one after it
    (``fused_00001`` for ``00001``, as many fusion codes name their outputs), a line saying so: triples are
    matched by the file name without its extension, and a guess at names would pair the wrong images."""
    want = set(missing)
    first = extra[0]
    for name in sorted((n for n in want if n in first), key=len, reverse=True):
        at = first.find(name)
        before, after = first[:at], first[at + len(name) :]
        if all(
            e.startswith(before) and e.endswith(after) and e[len(before) : len(e) - len(after)] in want for e in extra
        ):
            added = " and ".join(f"{text!r} {where}" for text, where in ((before, "before"), (after, "after")) if text)
            return (
                f"its names are the sources' with {added} them; images are matched by the file name "
                "without its extension, so rename them to the sources' names"
            )
    return None


def _method_name(folder: str) -> str:
    """A fused folder's method name: its own name, or its parent's for ``RUN/<model>/fused`` (the
    layout ``bench run --save-fused`` writes, where every folder is called ``fused``); a single
    fused image's, its file name without the extension."""
    path = os.path.abspath(folder)
    name = os.path.basename(path)
    if os.path.isfile(path):
        return stem(path)
    return (os.path.basename(os.path.dirname(path)) or name) if name == "fused" else name


def _single_triple(x1: str, x2: str, fused: dict, labels) -> str | None:
    """``bench eval`` on image files instead of folders: x1, x2, every fused (and the label map) one
    file each, scored as one triple named by x1's file (None: folders). Files mixed with folders:
    one error, as the same stems could not pair them."""
    paths = {"--x1": x1, "--x2": x2, **{f"--fused {m}": d for m, d in fused.items()}}
    if labels is not None:
        paths["--labels"] = labels
    files = [k for k, p in paths.items() if os.path.isfile(p)]
    if not files:
        return None
    for k, p in paths.items():
        if not os.path.exists(p):
            raise FileNotFoundError(f"{k} {p}: no such image ({files[0]} is one image, so each input is one)")
        if os.path.isdir(p):
            raise ValueError(
                f"{k} {p}: a folder, while {files[0]} {paths[files[0]]} is one image; give every input as one "
                "image (one triple) or every one as a folder (triples paired by file name)"
            )
    return stem(x1)


def parse_fused(specs) -> dict[str, str]:
    out = {}
    for s in map(os.fspath, specs):
        named = "=" in s and not os.path.exists(s)  # a folder whose path holds "=" is a folder, not NAME=DIR
        name, _, folder = s.partition("=") if named else (_method_name(s), "", s)
        if not name.strip() or not folder:
            raise ValueError(f"--fused {s!r}: expected DIR or NAME=DIR, with a method name and a folder")
        if name in out:
            raise ValueError(
                f"--fused {s}: method name {name!r} given twice (also {out[name]}); name each: --fused NAME=DIR"
            )
        out[name] = folder
    return out


def _refuse_model_folder(folder: str) -> None:
    """A run's model folder (its model.json) holds weights and scores, not the fused images: say
    where they are, or how to write them (its samples.npy was read as an image named samples).
    Likewise a whole run folder."""
    if os.path.isfile(os.path.join(folder, "config.json")) and os.path.isfile(os.path.join(folder, "scores.csv")):
        each = os.path.join(folder, "<model>", "fused")
        raise ValueError(
            f"--fused {folder}: a run folder; give each model's fused images, {each} (bench run --save-fused "
            "writes them)"
        )
    if not os.path.isfile(os.path.join(folder, "model.json")):
        return
    inside = os.path.join(folder, "fused")
    if os.path.isdir(inside):
        raise ValueError(f"--fused {folder}: a model folder of a run; its fused images are in {inside}")
    raise ValueError(
        f"--fused {folder}: a model folder of a run, which kept no fused images; bench run --save-fused "
        f"writes them to {inside}"
    )


def evaluate_folders(
    x1_dir: str,
    x2_dir: str,
    fused: dict[str, str] | str | list[str],
    out: str,
    metric_profile: str = "upstream",
    metrics=None,
    quantize=None,
    batch: int = 16,
    device: str = "cpu",
    progress: bool = True,
    style: str = "stats",
    lineage=None,
    workers: int | str = 1,
    say=_say,
    labels: str | None = None,
) -> pandas.DataFrame:
    """Score every fused folder against the source folders (same file stem = one triple; or, given
    image files instead of folders, that one triple, named by x1's file); writes
    ``scores.csv``, ``config.json`` and the leaderboards under ``out``; returns the scores.
    ``fused``: ``{method: folder}``, or one folder or a list of them as ``bench eval --fused`` takes
    them (``"DIR"``, named by the folder, or by the model for ``RUN/<model>/fused``; or ``"NAME=DIR"``).
    ``lineage`` (e.g. ``"vifb"``) scores every metric of those lineages (:mod:`metrics.lineage`).
    ``workers``: processes scoring batches side by side on a CPU, or ``"auto"`` (:func:`eval_workers`;
    ``bench eval``'s default). From a script, more than one needs the script's work under
    ``if __name__ == "__main__":``, as for any spawned Python process. ``labels``: a folder of
    label maps with the sources' file names (BraTS labels, 0 = background): every image is then also
    scored inside its tumour's box, as ``bench run`` scores it (``region`` column, and
    ``leaderboard_tumour.*``)."""
    folders = {"x1_dir": x1_dir, "x2_dir": x2_dir, "out": out, **({"labels": labels} if labels is not None else {})}
    for what, folder in folders.items():
        if not isinstance(folder, (str, os.PathLike)):  # out=None raised "expected str, bytes or os.PathLike"
            raise TypeError(f"{what}: expected a folder (a str or pathlib.Path); got {folder!r}")
    if not isinstance(fused, dict):
        fused = parse_fused([fused] if isinstance(fused, (str, os.PathLike)) else fused)
    device = str(pick_device(str(device)))
    names = resolve_metrics(metrics, lineage)
    get_profile(metric_profile)  # an unknown profile: an error before any work
    need = min_image_size(names, metric_profile)
    single = _single_triple(x1_dir, x2_dir, fused, labels)
    listed = (lambda path: {single: path}) if single else list_images
    a, b = listed(x1_dir), listed(x2_dir)
    if os.path.realpath(x1_dir) == os.path.realpath(x2_dir):  # legal (a degenerate check), but most often a typo
        say(
            f"bench eval: warning: --x1 and --x2 are the same {'file' if single else 'folder'} ({x1_dir}); each "
            "triple's two sources are one image"
        )
    problems = []
    fl = {}
    for m, d in fused.items():
        _refuse_model_folder(d)
        fl[m] = listed(d)
        missing = sorted(set(a) - set(fl[m]))
        extra = sorted(set(fl[m]) - set(a))
        if missing:
            problems.append(f"{d}: no fused image for {_listing(missing)}")
        if extra:
            problems.append(f"{d}: no source images for {_listing(extra)}")
        if missing and extra and (hint := _renaming(missing, extra)):
            problems.append(f"{d}: {hint}")
    if set(a) != set(b):
        only = ((x1_dir, sorted(set(a) - set(b))), (x2_dir, sorted(set(b) - set(a))))
        problems.append("x1 and x2 folders differ: " + "; ".join(f"only in {d}: {_listing(n)}" for d, n in only if n))
    label_files = None
    if labels is not None:
        label_files = listed(labels)
        missing = sorted(set(a) - set(label_files))
        if missing:
            problems.append(f"{labels}: no label map for {_listing(missing)}")
    if problems:
        raise ValueError("unmatched files:\n  " + "\n  ".join(problems))
    keys = sorted(a)
    imgs = {}  # sizes from the files' headers: the pixels are decoded once, batch by batch
    for k in keys:
        s1, s2 = probe_image(a[k]), probe_image(b[k])
        if s1 != s2:
            raise ValueError(f"{b[k]} is {s2[0]}x{s2[1]}; expected {s1[0]}x{s1[1]} like {a[k]}")
        if min(s1) < need:
            raise ValueError(f"{a[k]} is {s1[0]}x{s1[1]}; the metrics need at least {need}x{need} pixels")
        imgs[k] = s1
    boxes = _tumour_boxes(keys, a, imgs, label_files) if label_files is not None else None  # before any scoring
    _refuse_input_folder(
        out, {"x1": x1_dir, "x2": x2_dir, **{f"--fused {m}": d for m, d in fused.items()}, "labels": labels}
    )
    _refuse_run_folder(out)
    created = first_missing(out)
    check_writable(out)
    try:
        with folder_lock(out, "wait for that eval to finish, or give this one another --out") as held:
            if held:
                remove_temporaries(out, lambda said: say(f"bench eval: {said}"))
            return _score_folders(  # by keyword: twenty arguments, several of one type
                keys=keys,
                imgs=imgs,
                a=a,
                b=b,
                fl=fl,
                fused=fused,
                out=out,
                names=names,
                metric_profile=metric_profile,
                quantize=quantize,
                batch=batch,
                device=device,
                progress=progress,
                style=style,
                x1_dir=x1_dir,
                x2_dir=x2_dir,
                lineage=lineage,
                workers=workers,
                say=say,
                labels=labels,
                boxes=boxes,
            )
    except ValueError:
        if created:  # bad input: no output folder of a failed eval is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    except BaseException:
        # stopped (Ctrl-C, an error in the machinery): no result file was written; the batches
        # scored so far stay in OUT/.scored, and the same command resumes from them
        if created and not os.listdir(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


class BatchCache:
    """The final scores of each batch, under ``OUT/.scored/``, so that an eval that was stopped
    resumes, and a rerun reuses, every batch whose images (paths, sizes, modification times),
    metrics, settings and code are unchanged. Keyed by all of these: a changed file, metric,
    profile, device or source file scores its batch again. After a finished eval it holds exactly
    that eval's batches. ``boxes``: per task, None (whole slices) or ``{stem: (row, col, side)}``,
    the tumour boxes the task's triples are scored inside (``bench eval --labels``)."""

    def __init__(self, out: str, tasks: list, boxes: list | None = None):
        self.folder = os.path.join(out, ".scored")
        code = {"metrics": metrics_code(), "reading": files_sha([imageio.__file__, __file__])}
        self.keys = [self._key(t, code, r) for t, r in zip(tasks, boxes or [None] * len(tasks), strict=True)]

    @staticmethod
    def _key(task, code: dict, boxes: dict | None = None) -> str:
        m, files, names, metric_profile, quantize, device, workload = task

        def stat(p):
            st = os.stat(p)
            return [os.path.abspath(p), st.st_size, st.st_mtime_ns]

        what = {
            "model": m,
            "files": [[k, *stat(p1), *stat(p2), *stat(pf), list(size)] for k, (p1, p2, pf, size) in files.items()],
            "metrics": [names, metric_profile, quantize, str(torch.device(device).type)],
            "compiled": _compile.wanted(workload, device),  # compiled kernels round differently (< 1e-6)
            # so does the hand-written FMI kernel (a CPU's, where it builds) against the PyTorch one
            "fmi_kernel": "native" if torch.device(device).type == "cpu" and _native.available() else "pytorch",
            "code": code,
            "torch": torch.__version__,
        }
        if boxes is not None:  # a tumour pass: the same triples, scored inside these boxes
            what["boxes"] = {k: [int(v) for v in box] for k, box in boxes.items()}
        return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def kept(self) -> int:
        """How many batches earlier evals left in the folder."""
        return len([f for f in os.listdir(self.folder) if f.endswith(".json")]) if os.path.isdir(self.folder) else 0

    def _path(self, i: int) -> str:
        return os.path.join(self.folder, f"{self.keys[i]}.json")

    def get(self, i: int):
        try:
            with open(self._path(i)) as fh:
                got = json.load(fh)
            return got["rows"], [tuple(n) for n in got["notes"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, i: int, result) -> None:
        rows, notes = result
        os.makedirs(self.folder, exist_ok=True)
        write_text(self._path(i), json.dumps({"rows": rows, "notes": [list(n) for n in notes]}))

    def prune(self) -> None:
        """Keep only this eval's batches."""
        keep = {f"{k}.json" for k in self.keys}
        for f in os.listdir(self.folder) if os.path.isdir(self.folder) else []:
            if f not in keep:
                os.remove(os.path.join(self.folder, f))


def _refuse_run_folder(out: str) -> None:
    """``bench eval`` writes ``scores.csv``, ``config.json`` and leaderboards: into the folder of a
    ``bench run`` they would replace the run's record (which its resume reads) beside the run's
    other tables and figures, which would then disagree with them; into any other folder that
    holds files (a project's own ``config.json``), they would replace those. Refused, naming the
    folder, unless it is new, empty, or an eval's (its ``config.json`` names the images)."""
    kind = folder_kind(out)
    if kind == "run":
        raise ValueError(
            f"--out {out}: the folder of a bench run (its config.json and tables would be replaced); "
            "expected a new folder or one written by bench eval"
        )
    if kind not in ("new", "eval"):
        raise ValueError(
            f"--out {out}: holds files and is not a bench eval folder (no config.json of an eval); expected a "
            "new or empty folder, or one written by bench eval"
        )


def _refuse_input_folder(out: str, inputs: dict) -> None:
    """Results written among the images they score: a later eval of that folder, or a copy of it,
    would carry them along (and a mistyped ``--out x1`` is more likely than a wish). Refused."""
    here = os.path.realpath(out)
    for what, folder in inputs.items():
        if folder is not None and os.path.realpath(folder) == here:
            raise ValueError(f"--out {out}: that is the {what} folder; expected a folder of its own for the results")


def _batch(arrs, device) -> torch.Tensor:
    """(B, C, H, W) from 2-D grey or (H, W, 3) RGB arrays."""
    x = torch.from_numpy(np.stack(arrs))
    return (x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()).to(device)


def _score_batch(task, columns: dict | None = None) -> tuple[list[dict], list]:
    """Score one batch of triples: ``task`` = (model, {stem: (x1 path, x2 path, fused path, (h, w))},
    metric names, profile, quantize, device, workload). Returns (rows, NaN notes as (column, stems,
    reason)). ``columns``: when ``task`` holds part of the metrics, the column of each metric in the
    whole set (a column's name depends on which lineages are scored together)."""
    m, files, names, metric_profile, quantize, device, workload = task
    by_shape = {}
    src = {k: (_read_source(p1), _read_source(p2)) for k, (p1, p2, _, _) in files.items()}
    for k, (p1, _, pf, size) in files.items():
        f = read_image(pf, colour=True)
        if f.shape[:2] != size:
            raise ValueError(f"{pf} is {f.shape[0]}x{f.shape[1]}; expected {size[0]}x{size[1]} like {p1}")
        # one batch per size and channel layout (grey or RGB fused image and sources)
        by_shape.setdefault((f.shape, src[k][0].shape, src[k][1].shape), []).append((k, f))
    rows, notes = [], []
    for group in by_shape.values():
        got: list = []
        h, w = group[0][1].shape[:2]
        sc = colour_score(
            _batch([f for _, f in group], device),
            _batch([src[k][0] for k, _ in group], device),
            _batch([src[k][1] for k, _ in group], device),
            names,
            profile=metric_profile,
            quantize=quantize,
            workload=workload,
            notes=got,
            chunk_size=max(1, EVAL_PIXELS // (h * w)),
        )
        if columns is not None:
            part = column_names(names)
            rename = {part[n]: columns[n] for n in names}
            sc = {rename[c]: v for c, v in sc.items()}
            got = [(rename.get(c, c), idx, reason) for c, idx, reason in got]
        notes += [(col, [group[i][0] for i in idx], reason) for col, idx, reason in got]
        if max(len(x.shape) for x in (group[0][1], *src[group[0][0]])) == 3:  # an RGB image in the triple
            notes.append((None, [k for k, _ in group], "colour"))
        for j, (k, _) in enumerate(group):
            rows.append({"model": m, "name": k, **{n: float(v[j]) for n, v in sc.items()}})
    return rows, notes


def _source_groups(indices, tasks: list) -> list[list[int]]:
    """``indices`` of ``tasks`` grouped by their batch of sources (the same x1 and x2 files, scored
    against several fused folders), in the order of each group's first task."""
    groups: dict = {}
    for i in indices:
        groups.setdefault(tuple((p1, p2) for p1, p2, _, _ in tasks[i][1].values()), []).append(i)
    return list(groups.values())


_DECODED: list = []  # {path: image} of the sources of the group of batches being scored (_sharing)


def _read_source(path: str):
    """A source image, decoded once for every batch of the group being scored (:func:`_sharing`: one batch
    per fused folder, the same x1 and x2 files), else read now."""
    if not _DECODED:
        return read_image(path, colour=True)
    memo = _DECODED[-1]
    if path not in memo:
        memo[path] = read_image(path, colour=True)
    return memo[path]


@contextlib.contextmanager
def _sharing(group: list):
    """Around a group of batches that share their sources: each source file is decoded once for all the
    fused folders (:func:`_read_source`: with eight folders, 14 of every 16 decodes were of images decoded
    already), and :func:`metrics.sharing_sources` computes what the lineage metrics take of the sources
    alone once for all (the scores the same bit for bit), unless ``FUSIONBENCH_SHARE_SOURCES=0`` (it holds
    one batch's intermediates: a few hundred MiB for MEFB or Tang; the decoded sources, a few MiB, are
    shared either way). A lone batch keeps nothing beyond its own scoring."""
    if len(group) < 2:
        yield
        return
    _DECODED.append({})
    try:
        with sharing_sources() if share_sources() else contextlib.nullcontext():
            yield
    finally:
        _DECODED.pop()


def share_sources() -> bool:
    """``FUSIONBENCH_SHARE_SOURCES``: ``1`` (default) shares the sources' work across fused folders, ``0``
    scores each folder's batch on its own (less memory, the same scores)."""
    value = os.environ.get("FUSIONBENCH_SHARE_SOURCES", "1")
    if value not in ("0", "1"):
        raise ValueError(f"FUSIONBENCH_SHARE_SOURCES must be 0 or 1; got {value!r}")
    return value == "1"


def _score_group(tasks: list) -> list:
    """:func:`_score_batch` of each task, in one :func:`_sharing` block (tasks of one batch of sources)."""
    with _sharing(tasks):
        return [_score_batch(t) for t in tasks]


def _deferrable(names: list[str], workload: int, device: str) -> list[str]:
    """The metrics whose compiled kernels are worth compiling in the background while the others
    are scored: those that run compiled kernels (on a CPU, for a large workload), when others exist."""
    if not _compile.wanted(workload, device):
        return []
    late = [n for n in names if METRICS[n].runs_compiled()]
    return late if len(late) < len(names) else []


def _score_deferring(tasks: list, results: list, bar, deferred: list[str], size, done=lambda i: None) -> None:
    """Fill ``results`` in this process while the kernels of the ``deferred`` metrics compile in a
    background thread (:func:`metrics._compile.warm_up`, on one dummy triple of ``size``): until
    they are compiled, batches are scored without those metrics, which are scored for them once the
    kernels are ready (their files read again, so memory stays flat). Every score is the one the
    batch gets when scored whole: the same kernels on the same images."""
    _, _, names, metric_profile, quantize, _, workload = tasks[0]
    early = [n for n in names if n not in deferred]
    cols = column_names(names)
    g = torch.Generator().manual_seed(0)
    dummy = [torch.rand(1, 1, *size, generator=g) for _ in range(3)]
    _compile.warm_up(
        lambda: score(*dummy, metrics=deferred, profile=metric_profile, quantize=quantize, workload=workload, notes=[])
    )

    def part(task, which):
        return (task[0], task[1], which, *task[3:])

    pending: list[int] = []

    def catch_up() -> None:
        for group in _source_groups(pending, tasks):
            with _sharing(group):
                for j in group:
                    rows, notes = results[j]
                    late_rows, late_notes = _score_batch(part(tasks[j], deferred), cols)
                    merged = []
                    for r, d in zip(rows, late_rows, strict=True):
                        both = {**r, **d}
                        merged.append({"model": r["model"], "name": r["name"], **{c: both[c] for c in cols.values()}})
                    results[j] = (merged, notes + late_notes)
                    done(j)
                    bar.update()
        pending.clear()

    for group in _source_groups(range(len(tasks)), tasks):
        with _sharing(group):
            for i in group:
                if pending and not _compile.warming():
                    catch_up()
                if _compile.warming():
                    results[i] = _score_batch(part(tasks[i], early), cols)
                    pending.append(i)
                    if not bar.disable:
                        bar.total += 1
                else:
                    results[i] = _score_batch(tasks[i])
                    done(i)
                bar.update()
    catch_up()


def _score_in_worker(tasks: list):
    log.disabled = True  # the main process logs the NaN notes
    try:
        return "ok", _score_group(tasks)
    except ValueError as e:  # bad input: one clear line in the main process, as without workers
        return "error", str(e)


def _import_reporting() -> None:
    """Import what the tables after the scoring need (pandas, 0.18 s, and the reporting modules): run by
    :func:`_score_side_by_side` while this process waits for the workers' last batches, where its core
    would idle, instead of after them."""
    import pandas  # noqa: F401

    import benchmark.reporting.report  # noqa: F401
    import benchmark.reporting.tables  # noqa: F401


def _pieces(group: list, tasks: list) -> list[list[tuple]]:
    """The batches of ``group`` (tasks of one batch of sources) cut into pieces of at most
    :attr:`~metrics.lineage.LineageImages.CHUNK` triples, as a CPU's lineage metrics cut a batch anyway
    (the same bounds: pieces of equal size, +-1): each piece a list of (task index, that task on the
    piece's triples). Every metric scores a triple alike in any batch (tests/test_eval.py), so the pieces'
    scores are the batch's, bit for bit."""
    stems = list(tasks[group[0]][1])  # a group's tasks hold the same triples (their sources)
    n = len(stems)
    k = -(-n // LineageImages.CHUNK)
    bounds = [n * j // k for j in range(k + 1)]
    return [
        [(i, (tasks[i][0], {s: tasks[i][1][s] for s in stems[lo:hi]}, *tasks[i][2:])) for i in group]
        for lo, hi in zip(bounds, bounds[1:])
    ]


def _score_side_by_side(
    tasks: list, results: list, n_workers: int, bar, first: int = 0, finished=lambda i: None
) -> None:
    """Fill ``results[i]`` (``i >= first``) with :func:`_score_batch` of ``tasks[i]``: ``n_workers - 1``
    worker processes (:func:`benchmark.running.pool.take`: forked now, or spawned ones that ``bench eval``
    started before it imported torch, else new ones) take groups of batches that share their sources
    (:func:`_source_groups`: one batch per fused folder) in order, two queued each, while this process
    scores the rest, so no core waits for the workers to start; past its last batch it imports what the
    tables need (:func:`_import_reporting`) while the workers end theirs. ``finished(i)``: after each
    batch's scores.

    The last ``2 n_workers`` groups go out in pieces (:func:`_pieces`, a quarter of a batch of 16), so
    that the processes end together: with whole batches, this process waited for a worker's last one, two
    queued, 0.0-1.25 s of one core for MEFB's batches of 0.74 s (1153 triples, four runs)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    idle = [_import_reporting]
    pending: dict = {}
    groups = _source_groups(range(first, len(tasks)), tasks)
    tail = max(0, len(groups) - 2 * n_workers)
    units = [[(i, tasks[i]) for i in g] for g in groups[:tail]]
    for g in groups[tail:]:
        units += _pieces(g, tasks)
    left = {}  # a batch's pieces still to score, and the scores of those done
    for unit in units:
        for i, _ in unit:
            left.setdefault(i, [0, [], []])[0] += 1
    nxt = 0

    def keep(unit: list, scored: list) -> None:
        for (i, _), (rows, notes) in zip(unit, scored, strict=True):
            part = left[i]
            part[0] -= 1
            part[1] += rows
            part[2] += notes
            if not part[0]:
                results[i] = (part[1], part[2])
                finished(i)
                bar.update()

    def harvest(done) -> None:
        for fut in done:
            status, result = fut.result()
            if status == "error":
                raise ValueError(result)
            keep(pending.pop(fut), result)

    with pool.take(n_workers) as ex:
        try:
            while nxt < len(units) or pending:
                harvest([f for f in pending if f.done()])
                while nxt < len(units) and len(pending) < 2 * (n_workers - 1):
                    pending[ex.submit(_score_in_worker, [t for _, t in units[nxt]])] = units[nxt]
                    nxt += 1
                if nxt < len(units):
                    keep(units[nxt], _score_group([t for _, t in units[nxt]]))
                    nxt += 1
                elif pending:
                    if idle:  # once: what comes after the scoring, while the workers end theirs
                        idle.pop()()
                    harvest(wait(pending, return_when=FIRST_COMPLETED).done)
        except BaseException as e:
            for fut in pending:
                fut.cancel()
            if isinstance(e, BrokenProcessPool):  # said as "A process in the process pool was terminated abruptly"
                raise RuntimeError(
                    "a worker process of bench eval ended abruptly while scoring (killed by the system for want of "
                    "memory, or by kill -9?); the batches scored so far are kept: the same command goes on from "
                    "them (--workers 1 scores in this process alone)"
                ) from None
            raise


def _score_folders(
    *,
    keys,
    imgs,
    a,
    b,
    fl,
    fused,
    out,
    names,
    metric_profile,
    quantize,
    batch,
    device,
    progress,
    style,
    x1_dir,
    x2_dir,
    lineage,
    workers="auto",
    say=_say,
    labels=None,
    boxes=None,
):
    workload = len(keys) * len(fused)
    every = [
        (
            m,
            {k: (a[k], b[k], fl[m][k], imgs[k]) for k in keys[s : s + batch]},
            names,
            metric_profile,
            quantize,
            device,
            workload,
        )
        for m in fused
        for s in range(0, len(keys), batch)
    ]
    n_slice, regions = len(every), [None] * len(every)
    if boxes is not None:  # each tumour box's batch, scored after the whole slices, cached alike
        with_box = [k for k in keys if boxes[k] is not None]
        for m in fused:
            for s in range(0, len(with_box), batch):
                part = with_box[s : s + batch]
                every.append(
                    (
                        m,
                        {k: (a[k], b[k], fl[m][k], imgs[k]) for k in part},
                        names,
                        metric_profile,
                        quantize,
                        device,
                        len(part),
                    )
                )
                regions.append({k: boxes[k] for k in part})
    cache = BatchCache(out, every, regions)
    scored = [cache.get(i) for i in range(len(every))]
    todo = [i for i, r in enumerate(scored) if r is None]
    batches = {"scored": len(todo), "reused": len(every) - len(todo)}  # for config.json
    if len(todo) < len(every):
        say(
            f"bench eval: reusing {len(every) - len(todo)} of {len(every)} batches"
            + (" (whole slices and tumour boxes)" if len(every) > n_slice else "")
            + f" scored by an earlier bench eval into {out} (same images, metrics and code; delete {cache.folder} "
            "to score them again)"
        )
    elif kept := cache.kept():  # a rerun that reuses nothing says why, as one that reuses some does
        say(
            f"bench eval: scoring every batch again: none of the {kept} batches scored by an earlier bench "
            f"eval into {out} is of these images, metrics, settings and code"
        )
    tumour_todo = [i for i in todo if i >= n_slice]
    todo = [i for i in todo if i < n_slice]
    tasks = [every[i] for i in todo]
    n_workers = eval_workers(workers, workload, max(len(tasks), 1), device)
    share_sources()  # a bad FUSIONBENCH_SHARE_SOURCES: one line before any scoring
    results: list = [None] * len(tasks)

    def done(j: int) -> None:  # a batch's final scores, kept for a rerun or a resumed eval
        cache.put(todo[j], results[j])

    # No tqdm monitor thread (it checks slow bars every 10 s): the workers are forked from this process
    # (benchmark.running.pool), which then has no thread but its own.
    tqdm.monitor_interval = 0
    bar = tqdm(total=len(tasks), desc=f"eval {', '.join(fused)}", disable=not progress or not tasks, leave=False)
    was_disabled, threads = log.disabled, torch.get_num_threads()
    log.disabled = True  # metrics.score's own NaN warnings: the notes are logged below, naming the images
    try:
        if not tasks:
            n_workers = 0
        first = 0
        # One process compiles its kernels in the background while it scores the other metrics.
        # Several processes each compile them (MEFB's Qp, ~10 s of CPU each) and still finish first:
        # mefb on 1,153 triples 77.2 s side by side against 102.7 s alone, on 288 27.6 against 31.7 s;
        # liu with the PyTorch FMI kernel compiled (FUSIONBENCH_NATIVE=0) 23.1 against 22.7 s
        # (docs/speed.md, "A hand-written FMI kernel").
        deferred = _deferrable(names, workload, device) if n_workers == 1 else []
        if deferred and tasks:
            first = len(tasks)
            _score_deferring(tasks, results, bar, deferred, imgs[keys[0]], done)
        if n_workers == 1:
            for group in _source_groups(range(first, len(tasks)), tasks):
                with _sharing(group):
                    for i in group:
                        results[i] = _score_batch(tasks[i])
                        done(i)
                        bar.update()
        elif n_workers > 1:
            torch.set_num_threads(1)  # this process scores batches too, beside n_workers - 1 others
            _score_side_by_side(tasks, results, n_workers, bar, first, done)
    finally:
        log.disabled = was_disabled
        torch.set_num_threads(threads)
        bar.close()
    for j, i in enumerate(todo):
        scored[i] = results[j]
    rows, colour, nans = [], {}, {}
    for task_rows, notes in scored[:n_slice]:
        rows += task_rows
        for col, stems, reason in notes:
            if col is None:  # the batch's triples hold an RGB image (a deferred batch reports twice)
                colour.update({(task_rows[0]["model"], k): None for k in stems})
            else:  # one line per fused folder, metric and reason, whatever the batches
                nans.setdefault((task_rows[0]["model"], col, reason), {}).update(dict.fromkeys(stems))
    rules = colour_rules(names) if colour else {}
    if colour:
        log.warning(
            "%d of %d triples hold RGB images (%s): scored with each lineage's colour rule: %s",
            len(colour),
            len(keys) * len(fused),
            ", ".join(f"{m}/{k}" for m, k in list(colour)[:10]) + (", ..." if len(colour) > 10 else ""),
            "; ".join(f"{lin}: {r}" for lin, r in rules.items()),
        )
    if boxes is not None:  # whole slices, then inside each tumour's box
        rows = [{"model": r["model"], "name": r["name"], "region": "slice", **r} for r in rows]
        log.disabled = True  # metrics.score's own NaN warnings: logged below, naming the images
        bar = tqdm(
            total=len(tumour_todo), desc="eval tumour boxes", disable=not progress or not tumour_todo, leave=False
        )
        try:
            for group in _source_groups(tumour_todo, every):  # the same boxes of the same sources
                with _sharing(group):
                    for i in group:
                        scored[i] = _score_tumour(every[i], regions[i])
                        cache.put(i, scored[i])
                        bar.update()
        finally:
            log.disabled = was_disabled
            bar.close()
        for task_rows, notes in scored[n_slice:]:
            rows += task_rows
            for col, stems, reason in notes:
                nans.setdefault((task_rows[0]["model"], col, reason + " (tumour box)"), {}).update(dict.fromkeys(stems))
    for (m, col, reason), stems in nans.items():
        log.warning(
            "%s %s for %d image(s) %s of fused folder %s: %s",
            col,
            is_nan(reason),
            len(stems),
            list(stems)[:10],
            m,
            reason,
        )
    # Imported here, not with this module: bench eval's workers import this module and need none of
    # pandas (0.18 s), and the main process's scoring starts that much sooner.
    import pandas as pd

    from benchmark.reporting.report import write_score_tables
    from benchmark.reporting.tables import write_scores

    scores = pd.DataFrame(rows)
    order = {"model": list(fused), "region": ["slice", "tumour"], "name": keys}  # batches come by size; rows do not
    by = [c for c in order if c in scores.columns]
    scores = scores.sort_values(by, key=lambda c: c.map({v: i for i, v in enumerate(order[c.name])}), kind="stable")
    scores = scores.reset_index(drop=True)
    caption = (
        f"Fusion metrics of user images ({len(keys)} triple{'s' * (len(keys) != 1)}, metric profile {metric_profile}"
        + (f", lineages {lineage}" if lineage else "")
        + (f", tumour boxes from the labels in {labels}" if labels is not None else "")
        + (f"; {len(colour)} with RGB images, scored by each lineage's colour rule (config.json)" if colour else "")
        + ")."
    )
    written = write_scores(os.path.join(out, "scores.csv"), scores)
    write_json(
        os.path.join(out, "config.json"),
        {
            "command": "bench eval",
            "x1": x1_dir,
            "x2": x2_dir,
            "fused": fused,
            "metric_profile": metric_profile,
            "quantize": quantize,
            "metrics": names,
            "lineage": lineage,
            "labels": labels,
            "rgb_triples": len(colour),
            "colour_rules": rules,
            "caption": caption,  # bench table rebuilds the leaderboards with it
            "versions": package_versions(),
            # this eval's machine; batches reused from an earlier eval were scored on that one's
            "device": {**device_info(torch.device(device)), "workers": max(n_workers, 1)},
            "batches": batches,
        },
    )
    write_score_tables(out, written, caption, style=style)  # and leaderboard_tumour.* with labels
    cache.prune()
    return scores


def _tumour_boxes(keys, a, imgs, label_files) -> dict:
    """Each triple's tumour box (:mod:`benchmark.data.regions`: labels > 0 dilated by 5 px, a square
    of at least 48 px; None without tumour labels), every label map checked before any scoring."""
    boxes = {}
    for k in keys:
        lab = read_labels(label_files[k])
        if lab.shape != imgs[k]:
            raise ValueError(
                f"{label_files[k]} is {lab.shape[0]}x{lab.shape[1]}; expected {imgs[k][0]}x{imgs[k][1]} like {a[k]}"
            )
        boxes[k] = tumour_boxes(torch.from_numpy(lab)[None])[0]
    return boxes


def _score_tumour(task, boxes: dict) -> tuple[list[dict], list]:
    """One batch of triples (``task`` as :func:`_score_batch` takes it) scored inside their tumour
    boxes ``{stem: (row, col, side)}``, as ``bench run`` scores its tumour rows. Returns (rows with
    ``region`` "tumour", NaN notes as (column, stems, reason))."""
    m, files, names, metric_profile, quantize, device, _ = task
    rows, notes, groups = [], [], {}
    for k, paths in files.items():
        r, c, side = boxes[k]
        whole = (read_image(paths[2], colour=True), _read_source(paths[0]), _read_source(paths[1]))
        three = [x[r : r + side, c : c + side] for x in whole]
        groups.setdefault(tuple(x.shape for x in three), []).append((k, three))
    for group in groups.values():
        got: list = []
        sc = colour_score(
            *(_batch([three[i] for _, three in group], device) for i in range(3)),
            names,
            profile=metric_profile,
            quantize=quantize,
            notes=got,
        )
        notes += [(col, [group[i][0] for i in idx], reason) for col, idx, reason in got]
        for j, (k, _) in enumerate(group):
            rows.append({"model": m, "name": k, "region": "tumour", **{n: float(v[j]) for n, v in sc.items()}})
    return rows, notes
