"""Data: the embedded ``phantom`` set, the authors' HDF5 layout, and the BraTS importer."""

from benchmark.data.datasets import ArrayPairs, H5Pairs, load_data, phantom_split, size_notes

__all__ = ["ArrayPairs", "H5Pairs", "load_data", "phantom_split", "size_notes"]
