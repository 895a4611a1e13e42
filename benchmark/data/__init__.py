"""Data: the embedded ``phantom`` set, the authors' HDF5 layout, and the BraTS importer."""

__all__ = ["ArrayPairs", "H5Pairs", "load_data", "phantom_split", "size_notes"]


def __getattr__(name: str):
    """The names of :mod:`benchmark.data.datasets`, imported on first use (PEP 562): a command that only
    reads images (``bench eval``, through :mod:`benchmark.data.imageio`) then skips the phantom's
    ``scipy.ndimage`` (0.12 s)."""
    if name in __all__:
        from benchmark.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
