"""What a lineage module declares about each of its metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class Spec:
    key: str  # the original's own name (the column, as in lineage.json)
    fn: Callable = field(repr=False)  # (LineageImages, column name) -> Tensor[B]
    higher_is_better: bool
    reference: str
    description: str
    checked: bool = True  # False: implemented from the original's definition, not checked against its output
    min_size: int = 3
    # True: computed in float64 whatever the inputs' dtype (result cast back), because float32
    # changes it beyond 1e-4: moments E[x^2] - mu^2 of 0..255 images cancel, and these originals'
    # stabilising constants are too small (or absent) to hide it.
    f64: bool = False
    compiled: bool = False  # True: runs a compiled kernel on a CPU for large workloads (metrics._compile)
    native: bool = False  # True: that kernel is Fast-FMI's, replaced by the hand-written one where it builds

    def __call__(self, li, name: str):
        if li.split:
            return torch.cat([self(part, name) for part in li.chunks()])
        if self.f64 and li.a.dtype != torch.float64:
            return self.fn(li.as_double(), name).to(li.a.dtype)
        return self.fn(li, name)
