"""The benchmark scripts run end to end with tiny settings, so they cannot rot between measurements.

They print figures, never assert on them (these machines are too noisy for timed tests); here only
that every method and preset gets its line, and that an interrupted accuracy benchmark resumes.
"""

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "baselines"))
from fake_data import write_image_folder  # noqa: E402
from method_steps import smoke_config  # noqa: E402


def _train(method, run_dir, *overrides) -> None:
    """A smoke run of `method` in this process (a subprocess's time is half imports), for a script to read."""
    from baselines.common.engine import run
    from baselines.registry import BASELINES

    run(smoke_config(method, *overrides), BASELINES[method], run_dir=run_dir)


def _run(tmp_path, *args) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SANM_CACHE_DIR": str(tmp_path / "cache")}
    # a hang guard only: each script here takes under a minute; 30 minutes outlasts any loaded machine's pass
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


@pytest.mark.slow
def test_masking_benchmark_prints_both_presets_against_the_loop(tmp_path):
    stdout = _run(tmp_path, "benchmarks/masking.py", "--batches", "4", "--seconds", "0.05")
    for preset in ("paper", "official"):
        # ours, checked (validate=True), loop, and both speed-ups
        assert re.search(rf"^{preset}\s+4\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+[\d.]+x$", stdout, flags=re.M), stdout
    assert stdout.count("parts at B=4") == 2


@pytest.mark.slow
def test_augment_cost_benchmark_prints_every_preset(tmp_path):
    stdout = _run(tmp_path, "benchmarks/augment_cost.py", "--batches", "8", "--repeats", "1")
    for preset in ("none", "weak"):
        assert re.search(rf"^{preset}\s+8\s+[\d.]+\s+-\s+-$", stdout, flags=re.M), stdout
    for preset in ("autoaugment", "randaugment"):  # ours, the per-image loop and the speed-up
        assert re.search(rf"^{preset}\s+8\s+[\d.]+\s+[\d.]+\s+[\d.]+x$", stdout, flags=re.M), stdout


@pytest.mark.slow
def test_overhead_benchmark_covers_every_method(tmp_path):
    stdout = _run(tmp_path, "benchmarks/overhead.py", "--widths", "4", "--batch", "8", "--repeats", "1",
                  "--steps", "2", "--threads", "1")
    assert re.search(r"SANM\(CE\) paper clean_and_masked [\d.]+ ms \([\d.]+x\)", stdout), stdout
    assert re.search(r"SANM\(DivideMix\) paper separate [\d.]+ ms \([\d.]+x\)", stdout), stdout
    for method in ("elr_plus", "cdr", "coteaching"):
        assert re.search(rf"{method} step.*\n  off [\d.]+ ms \(1.00x\) \| paper [\d.]+ ms \([\d.]+x\) \| "
                         rf"official [\d.]+ ms \([\d.]+x\)", stdout), (method, stdout)


def _tiny_archive(tmp_path):
    """A three-class JPEG folder packed like the CIFAR-10 copy the accuracy benchmark unpacks."""
    folder = tmp_path / "jpg" / "cifar10"
    write_image_folder(folder, ["cat", "dog", "eel"], n_per_class=6, fmt="jpg")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar10")
    return archive


@pytest.mark.slow
def test_accuracy_benchmark_writes_its_table_and_resumes(tmp_path):
    archive = _tiny_archive(tmp_path)
    args = ["benchmarks/cifar10_mini.py", "--archive", str(archive), "--cache", str(tmp_path / "unpacked"),
            "--subset", "0", "--width", "4", "--noise", "sym_0.5", "--output", str(tmp_path / "out")]
    _run(tmp_path, *args, "--runs", "sanm_ce", "--epochs", "2")  # as if stopped after two of three epochs
    # continues SANM(CE) from its checkpoint and starts CE, which has none
    _run(tmp_path, *args, "--runs", "ce", "sanm_ce", "--epochs", "3", "--resume")
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| CE |" in table and "| SANM(CE) clean_and_masked |" in table and "3 epochs" in table
    metrics = sorted((tmp_path / "out").rglob("metrics.jsonl"))
    epochs = [[json.loads(line)["epoch"] for line in m.read_text().splitlines()] for m in metrics]
    assert epochs == [[1, 2, 3], [1, 2, 3]]
    # SANM(CE) starts after CE's 2 warm-up epochs: the resumed third epoch is a SANM one
    sanm_epochs = [json.loads(line) for line in metrics[1].read_text().splitlines()]
    assert "mask_ratio_noisy" in sanm_epochs[2] and "mask_ratio_noisy" not in sanm_epochs[1]
    before = metrics[1].read_text()
    again = tmp_path / "again.md"  # a finished run is only re-read, not trained again: the same row
    _run(tmp_path, *args, "--runs", "sanm_ce", "--epochs", "3", "--resume", "--table", str(again))
    assert metrics[1].read_text() == before
    row = next(line for line in table.splitlines() if line.startswith("| SANM(CE)"))
    assert row in again.read_text().splitlines()
    # without --resume or --overwrite, a run directory that holds a run is never started again
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SANM_CACHE_DIR": str(tmp_path / "cache")}
    refused = subprocess.run([sys.executable, *args, "--runs", "sanm_ce", "--epochs", "3"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=1800)
    assert refused.returncode != 0 and "already holds a run" in refused.stderr
    assert "rerun the same command with --resume, or with --overwrite" in refused.stderr
    assert metrics[1].read_text() == before
    _run(tmp_path, *args, "--runs", "sanm_ce", "--epochs", "2", "--overwrite")  # starts it again
    assert [json.loads(line)["epoch"] for line in metrics[1].read_text().splitlines()] == [1, 2]


@pytest.mark.slow
def test_memorisation_protocol_runs_every_seed_and_reports_mean_and_each(tmp_path):
    """Both seeds at once (--jobs 2), each its own run directory, and the table in the order given."""
    archive = _tiny_archive(tmp_path)
    _run(tmp_path, "benchmarks/cifar10_mini.py", "--archive", str(archive), "--cache", str(tmp_path / "unpacked"),
         "--subset", "0", "--width", "4", "--runs", "ce", "--protocol", "memorisation", "--epochs", "2",
         "--seeds", "0", "1", "--jobs", "2", "--output", str(tmp_path / "out"))
    table = (tmp_path / "out" / "table.md").read_text()
    assert "batch 64, lr /10 after epoch [36]" in table and "seeds 0 1" in table
    row = next(line for line in table.splitlines() if line.startswith("| CE |"))
    # the figure at the epoch the noisy validation split selects comes first, then best and last
    best = re.match(r"\| CE \| [\d.]+ \([\d.]+ / [\d.]+\) \| ([\d.]+) \(([\d.]+) / ([\d.]+)\) \|", row)
    assert best and abs(float(best[1]) - (float(best[2]) + float(best[3])) / 2) < 0.006
    # the course of training, one row per seed, read back from each run's metrics.jsonl
    course = {int(m[1]): float(m[2]) for m in re.finditer(r"^\| CE \| (\d) \| ([\d.]+) \|$", table, flags=re.M)}
    assert "| run | seed | 2 |" in table and sorted(course) == [0, 1], table
    last = re.match(r"\| CE \| [\d.]+ \([\d.]+ / [\d.]+\) \| [\d.]+ \(([\d.]+) / ([\d.]+)\) \| [\d.]+ \(([\d.]+) / ([\d.]+)\)", row)
    assert (course[0], course[1]) == (float(last[3]), float(last[4]))  # epoch 2 is the last epoch
    resolved = sorted((tmp_path / "out").rglob("resolved.yaml"))
    assert [p.parent.name for p in resolved] == ["seed0", "seed1"]
    assert all("batch_size: 64" in p.read_text() and "- 36" in p.read_text() for p in resolved)


@pytest.mark.slow
def test_epoch_time_benchmark_prints_every_variant_and_the_ratios(tmp_path):
    folder = tmp_path / "jpg"
    write_image_folder(folder, ["cat", "dog", "eel"], n_per_class=12, fmt="jpg")
    stdout = _run(tmp_path, "benchmarks/epoch_time.py", "--root", str(folder), "--subset", "24", "--width", "4",
                  "--threads", "1", "2", "--device", "cpu")
    for variant in ("ce", "dividemix", "sanm_dividemix_on", "sanm_dividemix_official"):
        for threads in ("1 thread", "2 threads"):  # each setting timed: warm-up, main epoch, its views, test pass,
            # compile extra; no GPU memory on CPU
            assert re.search(rf"^\| {variant} \(channels_last off, {threads}\) \| 32 \| off \|( [\d.]+ \|){{5}} - "
                             rf"\| \d+ \| [\d.]+ \|$", stdout, flags=re.M), stdout
        assert re.search(rf"^{variant}: compile off, channels_last off, 2 threads against compile off, channels_last "
                         rf"off, 1 thread: main epoch [\d.]+x as fast$", stdout, flags=re.M), stdout
    assert re.search(r"sanm_dividemix_on / dividemix per main epoch \(32, compile off, channels_last off, "
                     r"1 thread\): [\d.]+x", stdout), stdout


@pytest.mark.slow
def test_gpu_acceptance_quick_mode_runs_every_section_on_cpu_and_writes_its_report(tmp_path):
    report = tmp_path / "acceptance.md"
    stdout = _run(tmp_path, "benchmarks/gpu_acceptance.py", "--device", "cpu", "--quick", "--output", str(report))
    assert report.read_text() in stdout  # --output holds the printed report
    row = r"^\| (\w+) \| (\w+) \| (\w+) \| 32 \| (true|false) \| (\w+) \| ok \| loss/\S+ [\d.]+ \| \d+ \|$"
    cells = re.findall(row, stdout, flags=re.M)
    assert cells == [("c2d", "official", "official", "true", "false")], stdout
    # the sync check's epochs ran; the debug mode itself is CUDA's, so it says skipped, never ok
    assert re.search(r"^\| ce \+sanm=on \| 32 \| skipped: CPU: .*finite losses \| - \| - \|$", stdout, flags=re.M)
    assert re.search(r"^\| ce \+sanm=on \| 2 \| ok \| loss/total [\d.]+ \| \d+ \|$", stdout, flags=re.M), stdout
    for variant in ("dividemix", "sanm_dividemix_on", "sanm_dividemix_official_recipe"):
        assert re.search(rf"^\| {variant} \| 32 \| off \|( [\d.]+ \|){{5}} - \| 10 \| [\d.]+ \|$", stdout,
                         flags=re.M), stdout
    assert "skipped on CPU: bf16 and fp16" in stdout and stdout.rstrip().endswith("all passed.")


@pytest.mark.slow
def test_decoder_cost_benchmark_prints_both_decoders_against_the_backbone(tmp_path):
    stdout = _run(tmp_path, "benchmarks/decoder_cost.py", "--arch", "resnet18", "--size", "64", "--batch", "2",
                  "--repeats", "1", "--threads", "1")
    assert "feature map (512, 2, 2)" in stdout, stdout
    for kind in ("bn", "linear"):
        assert re.search(rf"decoder={kind}: [\d.]+M parameters, forward \+ backward \d+ ms \([\d.]+x", stdout), stdout


def test_memorisation_protocol_drops_the_lr_only_for_step_schedules():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cifar10_mini

    protocol = cifar10_mini.PROTOCOLS["memorisation"]
    assert cifar10_mini.schedule_overrides("ce", protocol) == ["trainer.lr_milestones=[36]"]
    assert cifar10_mini.schedule_overrides("coteaching", protocol) == []  # its linear decay, scaled to the epochs
    assert cifar10_mini.schedule_overrides("elr_plus", protocol) == []  # its recipe's drop at 75%: epoch 45 of 60
    assert cifar10_mini.schedule_overrides("ce", cifar10_mini.PROTOCOLS["short"]) == []


def test_every_row_and_every_protocol_compose(tmp_path):
    """A row that fails to compose would fail hours into a campaign, after the rows before it: each row's command
    line is composed here as the script builds it (every row under the memorisation protocol, every protocol with
    CE's row: a row's overrides and a protocol's do not touch the same keys), without training."""
    import argparse

    from hydra import compose, initialize_config_dir

    import baselines.registry  # noqa: F401  (registers each method's config schema)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cifar10_mini

    args = argparse.Namespace(width=16, device="cpu", resume=True, subset=5000, human_labels=tmp_path / "n.npz")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cases = [("memorisation", key) for key in cifar10_mini.RUNS] + [(name, "ce") for name in cifar10_mini.PROTOCOLS]
        for name, key in cases:
            protocol, (label, method, extra) = cifar10_mini.PROTOCOLS[name], cifar10_mini.RUNS[key]
            noise = protocol.get("noise", "sym_0.5")
            common = cifar10_mini.common_overrides(args, protocol, tmp_path, noise)
            cfg = compose(config_name=method, overrides=cifar10_mini.run_overrides(common, key, protocol, 0, tmp_path))
            assert cfg.trainer.epochs == protocol["epochs"] and cfg.noise.name == noise, (name, key)
            assert ("+sanm" in " ".join(extra)) == bool(cfg.get("sanm")), (name, key, label)
            assert cfg.trainer.channels_last is False
        common = cifar10_mini.common_overrides(args, cifar10_mini.PROTOCOLS["memorisation"], tmp_path, "sym_0.5")
        cfg = compose(config_name="dividemix", overrides=cifar10_mini.run_overrides(
            common, "sanm_dividemix", cifar10_mini.PROTOCOLS["memorisation"], 0, tmp_path, channels_last=True))
        assert cfg.trainer.channels_last is True and cfg.sanm is not None


def test_channels_last_is_dividemix_rows_on_a_cpu_unless_the_layout_is_given():
    """`--channels-last auto` (the default) turns it on where it measured 1.3x faster on the CPU (DivideMix); `on`
    and `off` (and the bare flag, `on`) put every row in one layout; a GPU, and width 4, keep the plain layout under
    auto."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import argparse

    import cifar10_mini

    assert cifar10_mini.channels_last_for("auto", "dividemix", "cpu") is True
    assert cifar10_mini.channels_last_for("auto", "ce", "cpu") is False
    assert cifar10_mini.channels_last_for("auto", "dividemix", "cuda") is False
    assert cifar10_mini.channels_last_for("on", "ce", "cuda") is True
    assert cifar10_mini.channels_last_for("off", "dividemix", "cpu") is False
    assert cifar10_mini.channels_last_for("auto", "dividemix", "cpu", width=4) is False  # torch's CPU crash there
    args = argparse.Namespace(channels_last="auto", device="cpu", width=16, runs=["ce", "dividemix", "sanm_dividemix"])
    assert cifar10_mini.layout_note(args) == ", channels_last for DivideMix, SANM(DivideMix)"
    args.runs = ["dividemix"]
    assert cifar10_mini.layout_note(args) == ", channels_last"
    args.channels_last = "off"
    assert cifar10_mini.layout_note(args) == ""


def test_the_course_table_shows_the_epochs_around_each_lr_drop():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import cifar10_mini

    assert cifar10_mini.course_epochs(60, [36]) == [10, 20, 30, 36, 37, 38, 40, 45, 50, 55, 60]
    assert cifar10_mini.course_epochs(20, []) == [5, 10, 15, 20]
    assert cifar10_mini.course_epochs(300, [150, 225])[:6] == [10, 20, 30, 40, 50, 60]
    assert {150, 151, 152, 155, 225, 226, 227, 300} <= set(cifar10_mini.course_epochs(300, [150, 225]))
    assert cifar10_mini.course_epochs(2, [36]) == [2]  # a drop after the run's end shows nothing


@pytest.mark.slow
def test_streaming_benchmark_prints_throughput_and_the_memory_of_a_long_list(tmp_path):
    stdout = _run(tmp_path, "benchmarks/streaming.py", "--workers", "0", "--images", "8", "--batch", "4",
                  "--list-entries", "3000")
    assert re.search(r"^workers 0: \d+ images/s \(8 images, batch 4, .*views \[3, 224, 224\]$", stdout, flags=re.M), stdout
    assert re.search(r"^a 3,000-entry Clothing1M list \([\d.]+ MB .*\): peak RSS \d+ MB, -?\d+ MB above", stdout,
                     flags=re.M), stdout


@pytest.mark.slow
def test_codivide_diagnosis_reads_a_dividemix_checkpoint_and_refuses_other_runs(tmp_path):
    run_dir = tmp_path / "dividemix_run"  # with SANM: its group comes back untyped from resolved.yaml
    _train("dividemix", run_dir, "noise=sym_0.5", "+sanm=on", "sanm.beta=0.02")
    resolved = run_dir / "resolved.yaml"  # as a run written before method.sanm_masked_set existed: it still reads
    resolved.write_text("".join(line for line in resolved.read_text().splitlines(keepends=True)
                                if "sanm_masked_set" not in line))
    stdout = _run(tmp_path, "benchmarks/codivide.py", str(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    right = re.search(r"after epoch 2, ([\d.]+) of 128 labels right", stdout)
    assert right and abs(float(right.group(1)) - (1 - summary["noise_rate_actual"])) < 1e-3, stdout
    for net in ("net1", "net2"):
        share = re.search(rf"{net}: labeled share ([\d.]+) at precision ([\d.]+|nan), gmm_auc ([\d.]+)", stdout)
        assert share and 0 <= float(share.group(1)) <= 1, stdout
        unlabeled = re.search(rf"{net}: .*\n    unlabeled side: (\d+) samples, mean G ([\d.]+); their labels right for "
                              r"([\d.]+), the networks' guess \(.*\) for ([\d.]+)", stdout)
        if float(share.group(1)) < 1:  # the unlabeled side, its G below the threshold, and what it trains on
            assert unlabeled and int(unlabeled.group(1)) == round((1 - float(share.group(1))) * 128), stdout
            assert float(unlabeled.group(2)) <= 0.5 and 0 <= float(unlabeled.group(3)) <= 1, stdout
            assert 0 <= float(unlabeled.group(4)) <= 1, stdout
    components = re.findall(r"GMM on normalised losses \(mean, std, weight\): ([\d.]+), [\d.]+, ([\d.]+); "
                            r"([\d.]+), [\d.]+, ([\d.]+)", stdout)
    assert len(components) == 2, stdout
    for low_mean, low_weight, high_mean, high_weight in components:
        assert 0 <= float(low_mean) <= float(high_mean) <= 1  # lower component first, in normalised units
        assert abs(float(low_weight) + float(high_weight) - 1) < 2e-3
    assert stdout.count("labels' loss at quantiles") == 4  # right and wrong, per network

    ce_dir = tmp_path / "ce_run"
    _train("ce", ce_dir)
    out = subprocess.run([sys.executable, "benchmarks/codivide.py", str(ce_dir)], cwd=ROOT, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode != 0 and "only methods with a co-divide" in out.stderr
