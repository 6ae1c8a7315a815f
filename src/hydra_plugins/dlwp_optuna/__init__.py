"""dlwp's Optuna sweeper for Hydra (found by Hydra's plugin discovery in the `hydra_plugins` namespace)."""
