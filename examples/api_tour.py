"""A tour of fusionbench from Python, on the embedded phantom data and the committed CPU weights.

Run it from anywhere: ``python examples/api_tour.py`` (about 5 s on a 2-core CPU; nothing
is trained and nothing is downloaded). It fuses four validation slices with two fusers, scores
them with Table 1's metrics and with CDDFuse's lineage, scores them inside each tumour's box, and
decomposes a fused image back into its sources with FusionINN.
"""

import os

import torch

import benchmark
from baselines import create_fuser, load_fuser
from benchmark.data.phantom import make_split
from metrics import ssim

# every fuser trained on this CPU, with its weights (bench run --from takes it too)
RUN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "cpu-phantom")

# 1. Data: T1-Gd (x1) and FLAIR (x2) slices, float (B, 1, 240, 240) in [0, 1], with BraTS labels.
x1, x2, labels = (torch.from_numpy(a) for a in make_split(0, "val", 4))
x1, x2 = x1[:, None], x2[:, None]

# 2. Fuse: a trained net from a finished run, and a pixel-wise anchor built from the registry.
with torch.no_grad():
    fused = {"unet": load_fuser(RUN, "unet")(x1, x2), "mean": create_fuser("mean")(x1, x2)}

# 3. Score: one row per image and method; the Table 1 five by default, another evaluation code's
#    metric set with lineage=...; labels add each image's tumour-box scores (region column).
table1 = benchmark.evaluate(fused, x1, x2)
print(table1.groupby("model")[["Q_SSIM", "Q_P"]].mean().round(3).to_string(), "\n")
cddfuse = benchmark.evaluate(fused, x1, x2, lineage="cddfuse", metrics="EN,SD,VIFF,Qabf,SSIM")
print(cddfuse.groupby("model")[["EN", "SD", "VIFF", "Qabf", "SSIM"]].mean().round(3).to_string(), "\n")
boxed = benchmark.evaluate(fused, x1, x2, metrics="Q_SSIM", labels=labels)
print(boxed.groupby(["model", "region"]).Q_SSIM.mean().round(3).to_string(), "\n")

# 4. Decompose: FusionINN is invertible; its fused image gives the two sources back.
inn = load_fuser(RUN, "fusioninn")
with torch.no_grad():
    f = inn(x1, x2)
    x1_hat, x2_hat = inn.decompose(f, generator=torch.Generator().manual_seed(0))
back = [float(ssim(hat, src).mean()) for hat, src in ((x1_hat, x1), (x2_hat, x2))]
print(f"FusionINN decomposition SSIM: T1-Gd {back[0]:.3f}, FLAIR {back[1]:.3f}")
