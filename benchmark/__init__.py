"""fusionbench's benchmark layer: data, the trainer, ``bench run`` and the leaderboards."""
