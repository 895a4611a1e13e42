"""Model speed: parameters, forward+backward and inference images/s, peak memory (issue: baselines).

    python -m benchmark.tools.speed_models [--models all] [--batch 8] [--device cpu|cuda] [--width 1.0] [--amp]

Each model is timed in its own subprocess (so the CPU peak RSS is that model's) on random
240x240 pairs: one warm-up step, then ``--steps`` timed steps of Adam on the model's training
loss, then timed inference. On CUDA, ``--batch paper`` uses each model's own batch size (64,
FunFuseAn 8) and peak memory is ``torch.cuda.max_memory_allocated``; ``--channels-last`` and
``--amp`` (bf16 autocast) measure the CUDA options of the trainer.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(name: str, batch, device: str, width: float, steps: int, amp: bool, channels_last: bool) -> dict:
    import torch

    from baselines.loss import LossConfig
    from baselines.registry import get_fuser
    from benchmark.config import make_config
    from benchmark.running.runner import model_kwargs
    from benchmark.training.trainer import model_loss

    entry = get_fuser(name)
    cfg = make_config("paper", width=width, ddfm_steps=100)
    model = entry.build(**model_kwargs(entry, cfg))
    if getattr(model, "prior", "absent") is None:  # DDFM: time sampling with an untrained prior of the default size
        from baselines.ddfm.prior import DiffusionPrior

        model.prior = DiffusionPrior(channels=tuple(int(c) for c in cfg.ddfm_prior_channels.split(",")))
        steps = 1
    dev = torch.device(device)
    bs = entry.batch_size if batch == "paper" else int(batch)
    out = {
        "model": name,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad)
        if isinstance(model, torch.nn.Module)
        else 0,
        "batch": bs,
        "device": device,
        "width": width,
        "amp": amp,
        "channels_last": channels_last,
    }
    model.to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    x1 = torch.rand(bs, 1, 240, 240, device=dev).contiguous(memory_format=fmt)
    x2 = torch.rand(bs, 1, 240, 240, device=dev).contiguous(memory_format=fmt)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    ac = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda")
    if entry.trainable:
        opt = torch.optim.Adam(model.parameters(), 3e-4)
        for i in range(steps + 1):
            if i == 1:
                sync()
                t0 = time.perf_counter()
            with ac():
                loss = model_loss(model, x1, x2, LossConfig())
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        out["train_images_per_s"] = steps * bs / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        for i in range(steps + 1):
            if i == 1:
                sync()
                t0 = time.perf_counter()
            with ac():
                model(x1, x2)
        sync()
        out["infer_images_per_s"] = steps * bs / (time.perf_counter() - t0)
        out["infer_seconds_per_image"] = 1 / out["infer_images_per_s"]
    if dev.type == "cuda":
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        out["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="deepfuse,funfusean,half-unet,unet,unet++,unet3+,fusioninn,ddfm")
    p.add_argument("--batch", default="8")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one, a.batch, a.device, a.width, a.steps, a.amp, a.channels_last)))
        return 0
    rows = []
    print(
        f"| model | params | batch | train img/s | infer img/s | infer s/img | peak MB |  ({a.device}, width "
        f"{a.width:g}{', bf16' if a.amp else ''}{', channels-last' if a.channels_last else ''})"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in a.models.split(","):
        cmd = (
            [
                sys.executable,
                "-m",
                "benchmark.tools.speed_models",
                "--one",
                name,
                "--batch",
                a.batch,
                "--device",
                a.device,
                "--width",
                str(a.width),
                "--steps",
                str(a.steps),
            ]
            + (["--amp"] if a.amp else [])
            + (["--channels-last"] if a.channels_last else [])
        )
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print(f"| {name} | failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode} |")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(d)
        print(
            f"| {name} | {d['params']:,} | {d['batch']} | {d.get('train_images_per_s', float('nan')):.2f} | "
            f"{d['infer_images_per_s']:.2f} | {d['infer_seconds_per_image']:.4f} | {d['peak_mem_mb']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
