"""baselines.report: grouping by setting and variant, mean ± std over seeds, SANM's gain, the paper's number,
and unfinished runs (running, stopped, failed, legacy) listed apart, never averaged in."""

import json
import os

import pytest
from omegaconf import OmegaConf

from baselines.report import as_csv, find_runs, group_runs, is_paired, latex, main, markdown, paper_results


def _run(root, sanm, seed, best, last, width=16, mu=None, state="finished", pid=None, method="ce", at_val=None):
    path = root / state / method / "cifar10" / "sym_0.5" / f"{sanm}-w{width}-{mu}" / f"seed{seed}"
    path.mkdir(parents=True)
    settings = {"method": {"name": method, "sanm_train_on": "clean_and_masked"}, "dataset": {"name": "cifar10",
                "root": f"/data/{seed}"}, "noise": {"name": "sym_0.5", "rate_actual": 0.45 + seed / 100},
                "model": {"width": width}, "trainer": {"epochs": 3}, "seed": seed,
                "sanm": None if sanm == "off" else {"name": sanm, "enabled": True, "mu": mu or 0.2}}
    OmegaConf.save(OmegaConf.create(settings), path / "resolved.yaml")
    epochs = 3 if state == "finished" else 1
    (path / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e + 1}) + "\n" for e in range(epochs)))
    if state == "finished":
        (path / "summary.json").write_text(json.dumps({
            "method": method, "dataset": "cifar10", "noise": "sym_0.5", "sanm": sanm, "best_test_acc": best,
            "last_test_acc": last, "mean_last10_test_acc": last - 1, "test_acc_at_best_val": at_val}))
    elif state != "legacy":
        status = {"state": state, "pid": pid or os.getpid(), "host": os.uname().nodename}
        if state == "failed":
            status["error"] = "RuntimeError: CUDA out of memory"
        (path / "status.json").write_text(json.dumps(status))
    return path


@pytest.fixture
def runs(tmp_path):
    # (best, last, at best val) of seeds 0 and 1, without and with SANM
    for seed, (off, on) in enumerate([((40.0, 30.0, 38.0), (45.0, 44.0, 45.0)), ((42.0, 34.0, 41.0), (47.0, 46.0, 46.0))]):
        _run(tmp_path, "off", seed, *off[:2], at_val=off[2])
        _run(tmp_path, "on", seed, *on[:2], at_val=on[2])
    _run(tmp_path, "on", 0, 50.0, 49.0, mu=0.3)  # an ablation: its own group, against the same base
    _run(tmp_path, "off", 0, 60.0, 59.0, width=64)  # another variant of the setting
    _run(tmp_path, "off", 1, 0, 0, state="failed")
    _run(tmp_path, "on", 2, 0, 0, state="running")  # this process: alive
    _run(tmp_path, "on", 3, 0, 0, state="running", pid=2**22 + 12345)  # no such process: stopped
    _run(tmp_path, "on", 4, 0, 0, state="legacy")  # metrics only, written before status.json existed
    return tmp_path


def test_groups_average_only_seeds_and_link_sanm_to_its_base(runs):
    found = find_runs([runs])
    assert sorted(r.state for r in found if r.state != "finished") == ["failed", "running", "stopped", "unfinished"]
    groups = {(g.sanm, g.variant): g for g in group_runs(found)}
    assert set(groups) == {("off", "model.width=16"), ("off", "model.width=64"), ("on", "model.width=16; sanm.mu=0.2"),
                           ("on", "model.width=16; sanm.mu=0.3")}
    on = groups[("on", "model.width=16; sanm.mu=0.2")]
    assert on.seeds == [0, 1] and on.base is groups[("off", "model.width=16")]
    assert on.paper["best"] == 89.7 and on.paper["table"] == "6" and on.base.paper["best"] == 79.4  # CIFAR-10 sym 50%
    ablation = groups[("on", "model.width=16; sanm.mu=0.3")]
    assert ablation.base is on.base and len(ablation.runs) == 1


def test_the_markdown_table_gives_mean_std_and_gain_by_hand(runs):
    found = find_runs([runs])
    text = markdown(found, group_runs(found))
    # off: at best val 38, 41 -> 39.50 ± 2.12 (sample std); best 40, 42 -> 41.00 ± 1.41; last 30, 34 -> 32.00 ± 2.83;
    # on: 45.50 ± 0.71, 46 ± 1.41, 45 ± 1.41; gains at val / best / last +6, +5, +13
    assert "| ce | cifar10 | sym_0.5 | off | model.width=16 | 2 (0, 1) | 39.50 ± 2.12 | 41.00 ± 1.41 | 32.00 ± 2.83 " \
           "| 31.00 ± 2.83 | - | - | - | - | 79.40 (Table 6) |" in text
    assert "| on | model.width=16; sanm.mu=0.2 | 2 (0, 1) | 45.50 ± 0.71 | 46.00 ± 1.41 | 45.00 ± 1.41 | 44.00 ± 1.41 " \
           "| +6.00 | +5.00 | +13.00 | 0 of 2 | 89.70 (Table 6) |" in text
    # a run without a validation split has no figure at best val, and no gain there
    assert "| sanm.mu=0.3" not in text and "model.width=16; sanm.mu=0.3 | 1 (0) | - | 50.00 | 49.00 | 48.00 | - | +9.00" in text
    assert "| off | model.width=64 | 1 (0) | - | 60.00 |" in text
    assert "6 finished runs in 4 groups" in text and "Not averaged in (4):" in text
    assert "- failed: " in text and "CUDA out of memory" in text and "(1/3 epochs" in text
    assert "- stopped: " in text and "its process is gone" in text and "- running: " in text


def test_paired_counts_the_seeds_whose_sanm_run_matches_its_base_run_until_sanm_starts(runs):
    """A gain is SANM's alone only when the SANM run is the base run draw for draw until SANM starts: seed 0 logs the
    same values as its base at epochs 1-2 (its times differ) and SANM's keys from epoch 3; seed 1 differs at epoch 2
    in one loss, so only seed 0 is paired; a run that never logged SANM's keys, or logged them from its first
    epoch, is not."""
    def write(path, rows):
        (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))

    found = find_runs([runs])
    on = next(g for g in group_runs(found) if g.sanm == "on" and g.variant.endswith("mu=0.2"))
    warm = [{"epoch": 1, "test_acc": 30.0, "loss/ce": 2.1, "epoch_seconds": 5.0},
            {"epoch": 2, "test_acc": 35.0, "loss/ce": 1.9, "epoch_seconds": 5.0}]
    sanm_epoch = {"epoch": 3, "test_acc": 40.0, "loss/ce": 1.5, "loss/reconstruction": 0.2, "mask_ratio_noisy": 0.1}
    for run in on.base.runs:
        write(run.path, [*warm, {"epoch": 3, "test_acc": 39.0, "loss/ce": 1.6}])
    for run in on.runs:
        moved = [{**row, "epoch_seconds": 7.5} for row in warm]
        if run.seed == 1:
            moved[1]["loss/ce"] = 1.9000001
        write(run.path, [*moved, sanm_epoch])
    found = find_runs([runs])
    on = next(g for g in group_runs(found) if g.sanm == "on" and g.variant.endswith("mu=0.2"))
    assert "| +6.00 | +5.00 | +13.00 | 1 of 2 | 89.70 (Table 6) |" in markdown(found, group_runs(found))
    seed0 = next(r for r in on.runs if r.seed == 0)
    base0 = next(r for r in on.base.runs if r.seed == 0)
    assert is_paired(seed0, base0)
    write(seed0.path, warm)  # SANM never started: nothing to pair through
    del seed0.records
    assert not is_paired(seed0, base0)
    write(seed0.path, [sanm_epoch])  # SANM from the first epoch: no epoch before it
    del seed0.records
    assert not is_paired(seed0, base0)


def test_csv_and_latex_carry_the_same_rows(runs):
    groups = group_runs(find_runs([runs]))
    lines = as_csv(groups).splitlines()
    assert lines[0].startswith("method,dataset,noise,SANM,variant,seeds,at best val,best") and len(lines) == 1 + len(groups)
    assert "41.00 +- 1.41" in lines[1]
    tex = latex(groups)
    assert tex.startswith(r"\begin{tabular}") and r"41.00 $\pm$ 1.41" in tex and r"sym\_0.5" in tex
    assert tex.count(r" \\") == 1 + len(groups)


@pytest.mark.slow
def test_main_refuses_a_missing_folder_and_an_empty_one(tmp_path, capsys):
    with pytest.raises(SystemExit, match="not a folder"):
        main([str(tmp_path / "absent")])
    with pytest.raises(SystemExit, match="no runs under"):
        main([str(tmp_path)])


def test_the_paper_figures_are_read_with_their_table_and_cell():
    paper = paper_results()
    assert paper[("dividemix", "on", "cifar10", "sym_0.9")]["best"] == 92.3
    assert paper[("dividemix", "off", "clothing1m", "none")]["table"] == "3"
    assert {t["table"] for t in paper.values()} == {"1", "3", "6"}
    assert all(row["cell"] for row in paper.values())


@pytest.mark.slow
def test_a_run_that_fails_mid_training_is_reported_as_failed_with_its_error(tmp_path, monkeypatch):
    from baselines.common.engine import run
    from baselines.registry import BASELINES
    from method_steps import smoke_config

    method = BASELINES["ce"]
    calls = []
    original = method.train_epoch

    def failing(self, epoch):
        calls.append(epoch)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, epoch)

    monkeypatch.setattr(method, "train_epoch", failing)
    cfg = smoke_config("ce", "progress=false")
    with pytest.raises(RuntimeError, match="simulated"):
        run(cfg, method, run_dir=tmp_path / "run")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["epoch"] == 1 and "CUDA out of memory" in status["error"]
    found = find_runs([tmp_path])
    assert [r.state for r in found] == ["failed"] and group_runs(found) == []
    assert "- failed: " in markdown(found, []) and "(1/2 epochs; RuntimeError: CUDA out of memory" in markdown(found, [])


def _log(path, rows):
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.mark.slow
def test_at_epochs_averages_a_metric_over_seeds_at_each_epoch_by_hand(tmp_path, capsys):
    a = _run(tmp_path, "on", 0, 45.0, 44.0)
    b = _run(tmp_path, "on", 1, 47.0, 46.0)
    _log(a, [{"epoch": 1, "test_acc": 30.0, "mask_ratio_noisy": 0.10}, {"epoch": 2, "test_acc": 40.0},
             {"epoch": 3, "test_acc": 44.0, "mask_ratio_noisy": 0.125}])
    # seed 1 was resumed: epoch 2 logged twice (the later line wins), and a line torn by a kill is skipped
    (b / "metrics.jsonl").write_text(
        json.dumps({"epoch": 1, "test_acc": 34.0, "mask_ratio_noisy": 0.20}) + "\n"
        + json.dumps({"epoch": 2, "test_acc": 1.0}) + "\n" + '{"epoch": 3, "test_a\n'
        + json.dumps({"epoch": 2, "test_acc": 42.0}) + "\n"
        + json.dumps({"epoch": 3, "test_acc": 46.0, "mask_ratio_noisy": 0.175}) + "\n")
    main([str(tmp_path), "--at-epochs", "1", "2", "3", "9"])
    text = capsys.readouterr().out
    # epoch 1: 30, 34 -> 32.00 ± 2.83; epoch 2: 40, 42 -> 41.00 ± 1.41; epoch 3: 44, 46 -> 45.00 ± 1.41
    assert "| ce | cifar10 | sym_0.5 | on | - | 2 (0, 1) | 32.00 ± 2.83 | 41.00 ± 1.41 | 45.00 ± 1.41 | - |" in text
    main([str(tmp_path), "--at-epochs", "1", "2", "3", "--metric", "mask_ratio_noisy", "--csv"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "method,dataset,noise,SANM,variant,seeds,mask_ratio_noisy@1,mask_ratio_noisy@2,mask_ratio_noisy@3"
    # ratios keep 3 decimals: (0.10 + 0.20) / 2, std 0.0707; epoch 2 logged by neither; epoch 3 0.150 ± 0.035
    assert lines[1] == 'ce,cifar10,sym_0.5,on,-,"2 (0, 1)",0.150 +- 0.071,-,0.150 +- 0.035'


@pytest.mark.slow
def test_at_epochs_marks_a_cell_only_some_seeds_logged_and_refuses_unknown_metrics(tmp_path, capsys):
    _log(_run(tmp_path, "off", 0, 40.0, 30.0), [{"epoch": 1, "test_acc": 20.0}, {"epoch": 2, "test_acc": 30.0}])
    _log(_run(tmp_path, "off", 1, 42.0, 34.0), [{"epoch": 1, "test_acc": 22.0}])
    main([str(tmp_path), "--at-epochs", "2", "--latex"])
    assert r"30.00 (1 of 2)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no finished run logged 'gmm_auc'; logged metrics: test_acc"):
        main([str(tmp_path), "--at-epochs", "2", "--metric", "gmm_auc"])
    with pytest.raises(SystemExit, match="epochs count from 1"):
        main([str(tmp_path), "--at-epochs", "0"])
    with pytest.raises(SystemExit, match="only with --at-epochs"):
        main([str(tmp_path), "--metric", "gmm_auc"])


@pytest.mark.slow
def test_unfinished_averages_in_runs_in_progress_over_the_epochs_they_logged(tmp_path, capsys):
    _log(_run(tmp_path, "on", 0, 45.0, 44.0), [{"epoch": e, "test_acc": a} for e, a in ((1, 30.0), (2, 40.0), (3, 44.0))])
    _log(_run(tmp_path, "on", 1, 0, 0, state="running"), [{"epoch": 1, "test_acc": 34.0}, {"epoch": 2, "test_acc": 44.0}])
    _log(_run(tmp_path, "on", 2, 0, 0, state="running", pid=2**22 + 12345), [{"epoch": 1, "test_acc": 26.0}])  # stopped
    _log(_run(tmp_path, "on", 3, 0, 0, state="failed"), [{"epoch": 1, "test_acc": 10.0}])  # diverged: stays out
    main([str(tmp_path), "--at-epochs", "1", "2", "3"])
    assert "| 1 (0) | 30.00 | 40.00 | 44.00 |" in capsys.readouterr().out  # finished runs only
    main([str(tmp_path), "--at-epochs", "1", "2", "3", "--unfinished"])
    text = capsys.readouterr().out
    # epoch 1: 30, 34, 26 -> 30.00 ± 4.00; epoch 2: 40, 44 -> 42.00 ± 2.83 (2 of 3); epoch 3: 44 (1 of 3)
    assert "| 3 (0, 1, 2) | 30.00 ± 4.00 | 42.00 ± 2.83 (2 of 3) | 44.00 (1 of 3) |" in text
    assert "Averaged in before finishing:" in text and "- stopped: " in text
    assert text.split("Not averaged in (1):")[1].strip().startswith("- failed: ")
    with pytest.raises(SystemExit, match="--unfinished is read only with --at-epochs or --plot"):
        main([str(tmp_path), "--unfinished"])


def test_the_class_count_newer_runs_record_does_not_split_them_from_older_seeds(tmp_path):
    _run(tmp_path, "off", 0, 40.0, 30.0)  # written before resolved.yaml held dataset.num_classes
    newer = _run(tmp_path, "off", 1, 42.0, 34.0)
    settings = OmegaConf.load(newer / "resolved.yaml")
    settings.dataset.num_classes = 10
    OmegaConf.save(settings, newer / "resolved.yaml")
    group, = group_runs(find_runs([tmp_path]))
    assert group.seeds == [0, 1] and group.variant == ""


def test_runs_written_before_a_setting_existed_group_with_its_old_value(tmp_path):
    """model.softmax_output (issue 42) is false in every run written before it: such a run and a new one are seeds of
    one group, not two variants."""
    for seed in (0, 1):
        path = _run(tmp_path, "off", seed, 40.0 + seed, 30.0)
        resolved = OmegaConf.load(path / "resolved.yaml")
        resolved.model.name = "preact_resnet18"
        if seed == 1:
            resolved.model.softmax_output = False
        OmegaConf.save(resolved, path / "resolved.yaml")
    (group,) = group_runs(find_runs([tmp_path]))
    assert group.seeds == [0, 1] and group.variant == ""
