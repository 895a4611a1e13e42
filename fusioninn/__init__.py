"""FusionINN: invertible fusion of T1-Gd and FLAIR (Kumar et al., 2024)."""
