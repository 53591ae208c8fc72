"""Machinery shared by every baseline: data, noise, models, the run loop."""
