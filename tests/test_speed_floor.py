"""benchmark.tools.speed_floor counts the windows Tang's FMI kernels score (the figure the README's
floor for ``tang`` multiplies)."""

import torch

from benchmark.tools.speed_floor import fmi_windows_and_ms, metric_ms


def test_fmi_window_counts_are_every_window_the_original_scores():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    f = torch.round((a + b) / 2)
    f[:, :, :8, :8] = a[:, :, :8, :8]  # identical to x1 there: those windows are skipped (x1 pass)
    counts = fmi_windows_and_ms(a, b, f, timed=False)
    assert set(counts) == {"FMI_pixel", "FMI_dct", "FMI_w"}
    assert all(ms == 0 for _, ms in counts.values())
    # DCT features: every 3x3 window of both passes (the DCT spreads the identical corner everywhere)
    assert counts["FMI_dct"][0] == 2 * 38 * 46
    # wavelet mosaic: each subband floor((n + 101) / 2) long (MATLAB's dwt with 'dmey', 102 taps)
    assert counts["FMI_w"][0] == 2 * (2 * 70 - 2) * (2 * 74 - 2)
    # binary Sobel edge maps: the many windows where the source's map equals F's are skipped
    assert 0 < counts["FMI_pixel"][0] < 2 * 38 * 46


def test_metric_ms_times_every_metric_of_the_set_alone():
    from metrics.lineage import SPECS

    g = torch.Generator().manual_seed(4)
    a = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    b = torch.randint(0, 256, (4, 1, 40, 48), generator=g).to(torch.float32)
    ms = metric_ms(a, b, torch.round((a + b) / 2), "cddfuse", repeats=1)
    assert list(ms) == [s.key for s in SPECS["cddfuse"]]
    assert all(v > 0 for v in ms.values())
