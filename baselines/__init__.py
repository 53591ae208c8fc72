"""Noisy-label baselines (DivideMix, C2D, ELR+, CDR, Co-teaching, CE) on one shared engine."""
