"""dlwp: the experiments of *Deep Learning with Python* (1st edition, chapters 2-8) as tracked,
reproducible PyTorch Lightning + Hydra runs. The command line is `dlwp` (`dlwp.cli`); this package
imports nothing heavy, so that `dlwp --help` stays instant."""
