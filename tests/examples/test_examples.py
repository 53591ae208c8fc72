"""Run the examples with tiny settings so the documentation cannot drift from the code."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_own_training_loop_runs_the_three_hooks(capsys):
    result = _load("own_training_loop").main(epochs=2, train_size=64, batch_size=32)
    assert 0.0 <= result["test_acc"] <= 100.0
    assert result["distinct_peaks"] >= 1  # SANM was active in the second epoch
    assert "distinct peak positions" in capsys.readouterr().out
