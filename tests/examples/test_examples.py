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


def test_sweep_script_runs_a_multirun_and_tables_it(tmp_path):
    """examples/sweep.sh with one method, one noise and SANM off/on: two finished runs in the table."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "METHODS": "ce", "NOISES": "sym_0.2", "SANM": "off,on",
           "OUTPUT_ROOT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(EXAMPLES / "sweep.sh"), "+experiment=smoke", "trainer.epochs=2"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ce |")]
    assert [line.split(" | ")[3] for line in lines] == ["off", "on"]
    assert "2 finished runs" in result.stdout


def test_sweep_table_lists_finished_runs_and_counts_the_rest(tmp_path):
    import json

    for sanm, best in (("off", 40.0), ("on", 45.5)):
        run = tmp_path / "cdr" / "cifar10" / "sym_0.5" / sanm / "seed1"
        run.mkdir(parents=True)
        (run / "metrics.jsonl").write_text("{}\n")
        (run / "summary.json").write_text(json.dumps({
            "method": "cdr", "dataset": "cifar10", "noise": "sym_0.5", "sanm": sanm, "best_test_acc": best,
            "last_test_acc": 39.0, "mean_last10_test_acc": 38.5, "test_acc_at_best_val": 37.25,
            "fitted_wrong_labels": 0.125}))
    unfinished = tmp_path / "ce" / "cifar10" / "sym_0.5" / "off" / "seed0"
    unfinished.mkdir(parents=True)
    (unfinished / "metrics.jsonl").write_text("{}\n")
    text = _load("sweep_table").table(tmp_path)
    assert "| cdr | cifar10 | sym_0.5 | on | 1 | 45.50 | 39.00 | 38.50 | 37.25 | 12.5% |" in text
    assert "2 finished runs" in text and "1 unfinished" in text
