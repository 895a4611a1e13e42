"""Running the benchmark: the staged runner, folder evaluation, FusionINN's decomposition and ablations."""
