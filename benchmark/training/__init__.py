"""Training: the one trainer and its random patches."""
