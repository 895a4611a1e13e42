"""Phase congruency as Zheng Liu's ``myphasecong3.m`` computes it (a revision of Kovesi's
``phasecong3.m``), batched; the feature maps of Zhao, Laganiere & Liu's Q_P (MEFB's ``Qp``).

Kovesi, "Image features from phase congruency", Videre 1(3), 1999, and "Phase congruency detects
corners and edges", DICTA 2003. Log-Gabor filters in the frequency domain, 4 scales (shortest
wavelength 3, factor 2.1, sigma_on_f 0.55) x 6 orientations (angular sigma pi / 6 / 1.2), each also
multiplied by a Butterworth low-pass (cutoff 0.45, order 15); per orientation the noise threshold
comes from the median squared response at the smallest scale (k = 2, divided by 1.7), and the
frequency-spread weight is a sigmoid (cutoff 0.5, gain 10). Returned per pixel: the phase
congruency sum(weighted energy) / (sum(amplitude) + 1e-4) over orientations, and the maximum and
minimum moments M, m of the orientations' phase-congruency covariance.

The filters depend only on the image size; they are built once per size (in float64, like the
original) and cached. The quirks of the revision are kept: the radius's centre fudge at
``floor(rows / 2) + 1``, the low-pass built with ``fftshift`` (not ``ifftshift``: they differ for
odd sizes), the per-orientation PC without the 1e-4 guard (0 / 0 on a constant image, as there).
"""

from __future__ import annotations

import functools
import math

import torch

from metrics import _compile, _native

NSCALE, NORIENT, MIN_WAVELENGTH, MULT, SIGMA_ON_F, D_THETA_ON_SIGMA = 4, 6, 3.0, 2.1, 0.55, 1.2
K_NOISE, CUT_OFF, GAIN, EPSILON = 2.0, 0.5, 10.0, 1e-4


def _centred_range(n: int) -> torch.Tensor:
    """The original's normalised frequency coordinates: (-(n-1)/2 .. (n-1)/2) / (n-1) for odd n,
    (-n/2 .. n/2-1) / n for even n."""
    i = torch.arange(n, dtype=torch.float64)
    return (i - (n - 1) / 2) / (n - 1) if n % 2 else (i - n / 2) / n


def _lowpass(rows: int, cols: int) -> torch.Tensor:
    """``lowpassfilter([rows, cols], 0.45, 15)``: Butterworth 1 / (1 + (r / 0.45)^30), ``fftshift``ed."""
    x = (torch.arange(1, cols + 1, dtype=torch.float64) - (cols // 2 + 1)) / cols
    y = (torch.arange(1, rows + 1, dtype=torch.float64) - (rows // 2 + 1)) / rows
    r = torch.sqrt(x.view(1, -1) ** 2 + y.view(-1, 1) ** 2)
    return torch.fft.fftshift(1.0 / (1.0 + (r / 0.45) ** 30))


@functools.lru_cache(maxsize=8)
def _bank(rows: int, cols: int):
    """(filters (NORIENT, NSCALE, rows, cols), EM_n per orientation, the noise-energy sums
    sum(ifft^2) and sum over scale pairs of ifft_i * ifft_j per orientation), on the CPU in float64."""
    x = _centred_range(cols).view(1, -1).expand(rows, cols)
    y = _centred_range(rows).view(-1, 1).expand(rows, cols)
    radius = torch.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0  # the fudge that keeps log(radius) finite; undone below
    theta = torch.atan2(-y, x)
    radius, theta = torch.fft.ifftshift(radius), torch.fft.ifftshift(theta)
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    lp = _lowpass(rows, cols)
    log_gabor = []
    for s in range(NSCALE):
        fo = 1.0 / (MIN_WAVELENGTH * MULT**s)
        lg = torch.exp(-(torch.log(radius / fo) ** 2) / (2 * math.log(SIGMA_ON_F) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    theta_sigma = math.pi / NORIENT / D_THETA_ON_SIGMA
    filters, em_n, sum_an2, sum_aiaj = [], [], [], []
    for o in range(NORIENT):
        angl = o * math.pi / NORIENT
        ds = sin_t * math.cos(angl) - cos_t * math.sin(angl)
        dc = cos_t * math.cos(angl) + sin_t * math.sin(angl)
        spread = torch.exp(-(torch.abs(torch.atan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        per_scale = torch.stack([lg * spread for lg in log_gabor])
        filters.append(per_scale)
        em_n.append(float((per_scale[0] ** 2).sum()))
        spatial = torch.fft.ifft2(per_scale).real * math.sqrt(rows * cols)
        sum_an2.append(float((spatial**2).sum()))
        sum_aiaj.append(
            float(sum((spatial[i] * spatial[j]).sum() for i in range(NSCALE - 1) for j in range(i + 1, NSCALE)))
        )
    return torch.stack(filters), em_n, sum_an2, sum_aiaj


@functools.lru_cache(maxsize=8)
def _bank_as(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`_bank`'s filters in ``dtype`` on ``device``, converted once (each phase congruency used to
    convert the 1.4 million float64 values again)."""
    return _bank(rows, cols)[0].to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=8)
def _blocked_bank(rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
    """:func:`_bank`'s filters on the CPU in ``dtype``, in the hand-written FFT's layout
    (:func:`metrics._native.fft_blocks`), made once."""
    return _native.fft_blocks(_bank_as(rows, cols, dtype, torch.device("cpu")))


def _median(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``median`` of each row: the middle value, or the mean of the two middle values
    (one selection, no sort: the upper middle value is the lower one when it occurs past the middle,
    else the smallest value above it; 2.6 ms for four rows of 57,600 here, against 3.4 ms for a
    second selection)."""
    n = x.shape[-1]
    if n % 2:
        return torch.kthvalue(x, n // 2 + 1, dim=-1).values
    lower = torch.kthvalue(x, n // 2, dim=-1, keepdim=True).values
    repeated = (x <= lower).sum(dim=-1, keepdim=True) > n // 2
    above = torch.where(x > lower, x, torch.full_like(x, float("inf"))).amin(dim=-1, keepdim=True)
    return ((lower + torch.where(repeated, lower, above)) / 2).squeeze(-1)


def _orientation(parts: torch.Tensor):
    """One orientation's sums over the scales, per pixel, from its filtered responses ``parts``
    (NSCALE, N, 2): even (real) and odd (imaginary) parts of the N pixels of the batch. Returns
    (sum of amplitudes, largest amplitude, raw energy before the noise threshold, squared amplitude
    at the smallest scale), each (N,). On a CPU the hand-written kernel (``metrics/phase_kernel.cpp``,
    :func:`metrics._native.orientation`: one pass, ~8x faster than this eager) computes them where it
    builds; else this runs, compiled for large workloads (:func:`metrics._compile.call`: inductor fuses
    its ~20 passes over the four scales into two)."""
    e, od = parts[..., 0], parts[..., 1]
    an = torch.sqrt(e * e + od * od)  # |EO|
    sum_e, sum_o = e.sum(dim=0), od.sum(dim=0)
    x_energy = torch.sqrt(sum_e * sum_e + sum_o * sum_o) + EPSILON
    mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
    energy = (e * mean_e + od * mean_o - torch.abs(e * mean_o - od * mean_e)).sum(dim=0)
    return an.sum(dim=0), an.amax(dim=0), energy, an[0] * an[0]


def _threshold(median, em_n, sum_an2, sum_aiaj):
    """An orientation's noise threshold per image from the median squared amplitude at its smallest scale
    (as a Rayleigh mean), with that orientation's filter sums from :func:`_bank` as numbers; or of every
    orientation at once, ``median`` (NORIENT, B) and the sums as (NORIENT, 1) tensors of its dtype (each
    operation then takes the same float operands as a number's: the same thresholds bit for bit)."""
    mean_e2n = -median / math.log(0.5)
    noise_power = mean_e2n / em_n
    tau = torch.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
    return (tau * math.sqrt(math.pi / 2) + K_NOISE * torch.sqrt((2 - math.pi / 2) * tau * tau)) / 1.7


def _dc_only(x: torch.Tensor) -> torch.Tensor:
    """Zeros but the DC term of each spectrum ``x`` (B, 1, H, W), or of each plane in :func:`_native.fft_blocks`'
    layout (B, W / L, H, L), which holds it at [b, 0, 0, 0] as well."""
    out = torch.zeros_like(x)
    out[:, 0, 0, 0] = x[:, 0, 0, 0]
    return out


def phase_congruency(im: torch.Tensor):
    """(phase congruency, M, m) maps of (B, 1, H, W) images in their own units (float64 advised:
    the original is double throughout). One orientation at a time: its four scales' inverse FFTs,
    then :func:`_orientation`'s sums over them (on a CPU by the hand-written kernel, which also takes the
    FFTs where the sides are multiples of its registers' lanes with prime factors 2, 3 and 5 only, as
    240; else compiled for large workloads), the noise threshold and the orientation's share of the
    moments."""
    b, _, rows, cols = im.shape
    _, em_n, sum_an2, sum_aiaj = _bank(rows, cols)
    filters = _bank_as(rows, cols, im.dtype, im.device)
    # On a CPU the hand-written kernels (phase_kernel.cpp) take each orientation's sums over the scales,
    # then the totals over the orientations from every orientation's sums and noise threshold, the same
    # steps in one pass each.
    native = NSCALE == 4 and _native.cpu_ready(im)
    # Where the hand-written kernel takes the sides, it computes the FFTs too (the images' spectra, 2x faster
    # than PyTorch's fft2 with its copy here, and the inverse FFTs: on this project's AMD CPU 1.8x faster
    # than PyTorch's FFTs with the kernel's sums after them: _native.orientation_fft); its inputs and each
    # image's pixels are then in blocks (_native.fft_blocks) until the end, as the steps between are per
    # pixel or per image.
    blocked = native and _native.fft_takes(rows, cols, im.dtype)
    # A constant image has no energy off the DC term; FFTs may leave rounding noise there (FFTW's
    # exact zeros are what make the original's 0 / 0), so it is set to exactly zero.
    # (Its smallest and largest values equal, NaN never: amin and amax took 0.03 ms for four 240x240 images
    # here, comparing every pixel with the first 0.29, and torch.aminmax 0.52.)
    pixels = im.flatten(1)
    flat = (pixels.amin(dim=1) == pixels.amax(dim=1)).view(-1, 1, 1, 1)
    if blocked:
        bank = _blocked_bank(rows, cols, im.dtype)
        planes = _native.image_spectrum_blocks(im[:, 0])  # (B, W / L, H, L) each: the DC term at [:, 0, 0, 0]
        if bool(flat.any()):
            planes = tuple(torch.where(flat, _dc_only(x), x) for x in planes)
    else:
        spectrum = torch.fft.fft2(im)
        if bool(flat.any()):
            spectrum = torch.where(flat, _dc_only(spectrum), spectrum)
        spectrum = spectrum[:, 0]  # (B, H, W)
    if native:
        sums_all = torch.empty(NORIENT, 4, im.numel(), dtype=im.dtype)
        medians = torch.empty(NORIENT, b, dtype=im.dtype)
    else:
        zero = torch.zeros_like(im)
        total_energy, total_sum_an, covx2, covy2, covxy = zero, zero, zero, zero, zero
    for o in range(NORIENT):
        angl = o * math.pi / NORIENT
        if blocked:
            sums = _native.orientation_fft(bank[o], *planes, rows, cols, EPSILON, out=sums_all[o])
        else:
            # (NSCALE, B, H, W) responses, scales first, so that the kernel sees all pixels as one axis
            parts = torch.view_as_real(torch.fft.ifft2(filters[o][:, None] * spectrum[None])).reshape(NSCALE, -1, 2)
            if native:
                sums = _native.orientation(parts, EPSILON, out=sums_all[o])
            else:
                sums = _compile.call(_orientation, parts, varying=((0, 1),))
        if native:  # the noise medians now, the thresholds of all orientations at once after the loop
            _native.median(sums[3].view(b, rows * cols), out=medians[o])
            continue
        sum_an, max_an, energy, an0_sq = (x.view(b, 1, rows, cols) for x in sums)
        threshold = _threshold(_median(an0_sq.flatten(1)), em_n[o], sum_an2[o], sum_aiaj[o]).view(b, 1, 1, 1)
        energy = torch.clamp(energy - threshold, min=0)
        width = sum_an / (max_an + EPSILON) / NSCALE
        weighted = energy / (1 + torch.exp((CUT_OFF - width) * GAIN))
        total_sum_an = total_sum_an + sum_an
        total_energy = total_energy + weighted
        pc = weighted / sum_an  # no guard: 0 / 0 on a constant image, as the original
        covx, covy = pc * math.cos(angl), pc * math.sin(angl)
        covx2, covy2, covxy = covx2 + covx * covx, covy2 + covy * covy, covxy + covx * covy
    if native:
        angles = [o * math.pi / NORIENT for o in range(NORIENT)]
        consts = [torch.tensor(c, dtype=im.dtype).view(NORIENT, 1) for c in (em_n, sum_an2, sum_aiaj)]
        thresholds = _threshold(medians, *consts)  # (NORIENT, B): the same operations as one orientation's
        # (the kernel puts the FFT's pixel order back into rows as it writes them)
        done = _native.phase_totals(sums_all, thresholds, angles, (EPSILON, CUT_OFF, GAIN), cols if blocked else 0)
        return tuple(x.view(b, 1, rows, cols) for x in done)
    pc = total_energy / (total_sum_an + EPSILON)
    covx2, covy2, covxy = covx2 / (NORIENT / 2), covy2 / (NORIENT / 2), covxy / NORIENT
    denom = torch.sqrt(covxy * covxy + (covx2 - covy2) ** 2) + EPSILON
    return pc, (covy2 + covx2 + denom) / 2, (covy2 + covx2 - denom) / 2
