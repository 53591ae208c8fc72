"""environment.jsonl: where each part of a run trained, and the resume that changes machine or software says so."""

import json

import pytest
import torch

from baselines.common.engine import run
from baselines.common.environment import (ENVIRONMENT_FILE, REPRODUCIBILITY_KEYS, current_environment,
                                          environment_changes, read_environments, record_environment)
from baselines.registry import BASELINES
from method_steps import smoke_config

CPU = torch.device("cpu")


def lines(run_dir):
    return [json.loads(line) for line in (run_dir / ENVIRONMENT_FILE).read_text().splitlines()]


def test_the_environment_names_the_software_and_hardware_that_round_the_floats():
    env = current_environment(CPU)
    assert set(REPRODUCIBILITY_KEYS) <= set(env)
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["accelerator"] is None and isinstance(env["processor"], str) and env["processor"]


def test_a_new_run_starts_the_file_and_a_resume_on_the_same_machine_adds_a_line_and_no_change(tmp_path):
    (tmp_path / ENVIRONMENT_FILE).write_text('{"from_epoch": 1, "processor": "a run this one replaces"}\n')
    assert record_environment(tmp_path, 1, CPU) == []
    assert [e["from_epoch"] for e in lines(tmp_path)] == [1]  # the replaced run's line is gone
    assert record_environment(tmp_path, 4, CPU) == []
    assert [e["from_epoch"] for e in lines(tmp_path)] == [1, 4]


def test_a_resume_in_another_environment_names_each_difference(tmp_path):
    record_environment(tmp_path, 1, CPU)
    first = lines(tmp_path)[0]
    first.update(processor="Another CPU", threads=first["threads"] + 1, host="elsewhere")  # host alone is no change
    (tmp_path / ENVIRONMENT_FILE).write_text(json.dumps(first) + "\n")
    now = torch.get_num_threads()
    assert record_environment(tmp_path, 3, CPU) == [
        f"processor (Another CPU -> {current_environment(CPU)['processor']})", f"threads ({now + 1} -> {now})"]


def test_a_line_cut_short_by_a_crash_is_passed_over(tmp_path):
    record_environment(tmp_path, 1, CPU)
    with open(tmp_path / ENVIRONMENT_FILE, "a") as handle:
        handle.write('{"from_epoch": 2, "proc')
    assert len(read_environments(tmp_path)) == 1 and read_environments(tmp_path / "none") == []


def test_environment_changes_compares_the_reproducibility_keys_only():
    before = {"torch": "2.1", "numpy": "1.26", "host": "a", "time": 1.0}
    assert environment_changes(before, {**before, "host": "b", "time": 2.0}) == []
    assert environment_changes(before, {**before, "torch": "2.2"}) == ["torch (2.1 -> 2.2)"]


@pytest.mark.slow
def test_a_run_resumed_in_another_environment_says_so_and_counts_two(tmp_path):
    run(smoke_config("ce", "trainer.epochs=1"), BASELINES["ce"], run_dir=tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["environments"] == 1
    started = lines(tmp_path)
    assert [e["from_epoch"] for e in started] == [1]
    started[0]["torch"] = "0.0-another-build"  # as if epoch 1 had trained with another torch
    (tmp_path / ENVIRONMENT_FILE).write_text(json.dumps(started[0]) + "\n")
    summary = run(smoke_config("ce", "trainer.epochs=2", "resume=true"), BASELINES["ce"], run_dir=tmp_path)
    assert f"resuming in another environment: torch (0.0-another-build -> {torch.__version__}); from epoch 2" in (
        tmp_path / "run.log").read_text()
    assert summary["environments"] == 2 and [e["from_epoch"] for e in lines(tmp_path)] == [1, 2]
