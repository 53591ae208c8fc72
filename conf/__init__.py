"""Hydra config groups of the baselines; installed as the package `baselines.conf` (see setup.cfg)."""
