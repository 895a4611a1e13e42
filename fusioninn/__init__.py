"""FusionINN: invertible fusion of T1-Gd and FLAIR (Kumar et al., 2024).

``FusionINN(k=3, alpha=0.5)`` fuses with ``model(x1, x2)`` and decomposes with
``model.decompose(fused, generator)``; images float (B, 1, H, W) in [0, 1], x1 = T1-Gd, x2 = FLAIR.
"""

from fusioninn.mmd import mmd, mmd_images, mmd_pixels
from fusioninn.model import FusionINN, build_graph

__all__ = ["FusionINN", "build_graph", "mmd", "mmd_images", "mmd_pixels"]
