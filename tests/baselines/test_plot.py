"""Run plots (baselines.plot) and the snapshots they read: which epochs, which gallery images, what is saved, that
saving it does not change the training, and that each figure is written from a smoke run (or skipped, saying why)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from baselines import plot
from baselines.common import engine
from baselines.common.snapshots import gallery_indices, snapshot_epochs
from baselines.registry import BASELINES

ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _smoke_run(run_dir: Path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="ce", overrides=["+experiment=smoke", "noise=sym_0.5", "tensorboard=false",
                                                   "progress=false", "trainer.epochs=3", "plots.enabled=true", *overrides])
    return engine.run(cfg, BASELINES["ce"], run_dir=run_dir)


@pytest.fixture(scope="module")
def sanm_run(tmp_path_factory):
    """One SANM(CE) smoke run of 3 epochs (SANM active from epoch 2), shared by the tests that read it."""
    run_dir = tmp_path_factory.mktemp("plots") / "sanm_ce"
    _smoke_run(run_dir, "+sanm=on")
    return run_dir


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---------------------------------------------------------------------- which epochs, which images
def test_auto_spreads_four_snapshots_over_the_epochs_sanm_is_active():
    assert snapshot_epochs("auto", 10, sanm_warmup=2) == [3, 5, 8, 10]  # linspace(3, 10, 4) rounded
    assert snapshot_epochs("auto", 3, sanm_warmup=1) == [2, 3]  # fewer active epochs than snapshots
    assert snapshot_epochs("auto", 3, sanm_warmup=3) == []  # SANM never active
    assert snapshot_epochs("auto", 3, sanm_warmup=None) == []  # no SANM: no G to save
    assert snapshot_epochs([5, 1, 5], 10, sanm_warmup=0) == [1, 5]
    assert snapshot_epochs([], 10, sanm_warmup=0) == []


@pytest.mark.parametrize("setting,match", [([0], "from 1 to trainer.epochs=10"), ([11], "from 1 to"),
                                           ([2.5], "2.5"), ("last", "auto or a list")])
def test_bad_snapshot_epochs_are_named(setting, match):
    with pytest.raises(ValueError, match=match):
        snapshot_epochs(setting, 10, sanm_warmup=0)


def test_the_gallery_is_half_wrong_labels_first_and_the_same_for_a_seed():
    is_clean = torch.tensor([True] * 20 + [False] * 10)
    picked = gallery_indices(is_clean, 8, seed=3)
    assert len(picked) == 8 and len(set(picked.tolist())) == 8
    assert (~is_clean[picked[:4]]).all() and is_clean[picked[4:]].all()
    assert torch.equal(picked, gallery_indices(is_clean, 8, seed=3))
    assert not torch.equal(picked, gallery_indices(is_clean, 8, seed=4))
    few_wrong = gallery_indices(torch.tensor([True] * 20 + [False]), 6, seed=0)
    assert len(few_wrong) == 6 and few_wrong[0] == 20  # the one wrong label, then five right ones
    assert len(gallery_indices(is_clean, 0, seed=0)) == 0
    with pytest.raises(ValueError, match="plots.gallery"):
        gallery_indices(is_clean, -1, seed=0)


def test_lr_drops_are_the_step_milestones_not_a_slow_decay():
    epochs = np.arange(1, 7)
    assert plot.lr_drops(epochs, np.array([0.1, 0.1, 0.01, 0.01, 0.01, 0.001])) == [3, 6]
    assert plot.lr_drops(epochs, np.array([0.1, 0.09, 0.08, 0.07, 0.06, 0.05])) == []  # linear decay: no step


# ---------------------------------------------------------------------- what a SANM run saves and draws
def test_snapshots_hold_g_mask_ratios_and_the_gallery_at_the_chosen_epochs(sanm_run):
    files = sorted((sanm_run / "diagnostics").glob("*.npz"))
    assert [f.name for f in files] == ["epoch_002.npz", "epoch_003.npz"]
    last = np.load(files[-1])
    n = OmegaConf.load(ROOT / "conf" / "experiment" / "smoke.yaml").dataset.train_subset  # one G per training image
    assert len(last["clean_prob"]) == n and last["is_clean"].shape == (n,) and int(last["epoch"]) == 3
    quality, ratio = last["clean_prob"].astype(float), last["mask_ratio"].astype(float)
    assert ((0 <= quality) & (quality <= 1)).all()
    assert np.isfinite(ratio).all()  # CE + SANM masks every sample every epoch
    # r = mu * (1 - G) with the paper's mu = 0.2 (Eq. 3), to the float16 the snapshot stores
    np.testing.assert_allclose(ratio, 0.2 * (1 - quality), atol=2e-3)
    k = len(last["gallery_index"])
    assert k == 8 and last["gallery_images"].shape == (8, 3, 32, 32) and last["gallery_images"].dtype == np.uint8
    assert last["gallery_cam"].shape == (8, 32, 32)
    assert 0 <= last["gallery_cam"].min() and last["gallery_cam"].max() <= 1
    boxes = last["gallery_peak_box"]
    assert ((0 <= boxes) & (boxes <= 32)).all() and (boxes[:, 0] <= boxes[:, 1]).all()
    wrong = last["gallery_label"] != last["gallery_true_label"]
    assert wrong[:4].all() and not wrong[4:].any()
    # the masked images differ from the originals exactly where a box is non-empty
    changed = (last["gallery_masked"] != last["gallery_images"]).any(axis=(1, 2, 3))
    has_box = (boxes[:, 1] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 2])
    assert (changed <= has_box).all()


def test_every_figure_is_written_at_the_end_of_a_sanm_run(sanm_run):
    written = sorted(p.name for p in (sanm_run / "plots").glob("*.png"))
    assert written == ["accuracy.png", "gallery.png", "mask_ratio.png", "quality.png"]  # CE selects nothing
    for name in written:
        data = (sanm_run / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    assert "plots (4) in" in (sanm_run / "run.log").read_text()


def test_taking_snapshots_does_not_change_what_the_run_trains(sanm_run, tmp_path):
    _smoke_run(tmp_path / "quiet", "+sanm=on", "plots.epochs=[]", "plots.enabled=false")
    assert not (tmp_path / "quiet" / "diagnostics").exists() and not (tmp_path / "quiet" / "plots").exists()
    drop = {"epoch_seconds"}
    assert ([{k: v for k, v in r.items() if k not in drop} for r in _records(tmp_path / "quiet")]
            == [{k: v for k, v in r.items() if k not in drop} for r in _records(sanm_run)])


def test_the_command_redraws_into_another_folder_and_names_what_it_skips(sanm_run, tmp_path, capsys):
    assert plot.main([str(sanm_run), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "selection.png: skipped, the method selects no clean samples" in out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "accuracy.png", "gallery.png", "mask_ratio.png", "quality.png"]


# ---------------------------------------------------------------------- runs with less to show
def _fake_run(run_dir: Path, records: list[dict], torn: bool = False) -> Path:
    run_dir.mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    (run_dir / "metrics.jsonl").write_text(text + ('{"epoch": 9, "te' if torn else ""))
    return run_dir


def test_a_selecting_method_mid_run_gets_its_selection_plot(tmp_path, capsys):
    records = [{"epoch": e, "lr": 0.02 if e < 3 else 0.002, "test_acc": 40.0 + e, "val_acc": 38.0 + e,
                "selection_precision_net1": 0.7 + e / 50, "selection_recall_net1": 0.6,
                "selection_precision_net2": 0.72, "selection_recall_net2": None} for e in range(1, 5)]
    run_dir = _fake_run(tmp_path / "coteaching", records, torn=True)  # the run is writing epoch 9 now
    skipped: dict = {}
    written = plot.write_plots(run_dir, skipped=skipped)
    assert sorted(p.name for p in written) == ["accuracy.png", "selection.png"]
    assert set(skipped) == {"quality.png", "mask_ratio.png", "gallery.png"}
    assert all((run_dir / "plots" / p.name).read_bytes().startswith(PNG) for p in written)


def test_a_folder_without_metrics_is_refused_with_what_to_give(tmp_path, capsys):
    assert plot.main([str(tmp_path)]) == 2
    assert "no metrics.jsonl in" in capsys.readouterr().err


def test_without_matplotlib_the_run_says_how_to_get_plots(tmp_path, monkeypatch):
    monkeypatch.setattr(plot, "matplotlib_available", lambda: False)
    assert "pip install" in engine._draw_plots(tmp_path)
    monkeypatch.setattr(plot, "matplotlib_available", lambda: True)
    assert "not written" in engine._draw_plots(tmp_path)  # no metrics: said, and the run itself stands


def test_a_curve_averages_runs_only_over_the_epochs_all_of_them_logged():
    epochs, mean, low, high = plot.curve([{1: 30.0, 2: 40.0, 3: 44.0}, {1: 34.0, 2: 42.0}])  # seed 1 is behind
    assert epochs == [1, 2] and mean.tolist() == [32.0, 41.0] and low.tolist() == [30.0, 40.0]
    assert high.tolist() == [34.0, 42.0]
    assert plot.curve([{1: 1.0}, {2: 2.0}])[0] == [] and plot.curve([])[0] == []


def test_report_plot_draws_every_group_in_one_png(tmp_path, capsys):
    from baselines.report import main as report

    for seed in (0, 1):
        for sanm in ("off", "on"):
            run = tmp_path / "ce" / sanm / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "resolved.yaml").write_text(f"seed: {seed}\nsanm:\n  enabled: {sanm == 'on'}\n  name: '{sanm}'\n")
            (run / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "test_acc": 40.0 + e + seed})
                                                       + "\n" for e in (1, 2, 3)))
            (run / "summary.json").write_text(json.dumps({"method": "ce", "dataset": "cifar10", "noise": "sym_0.5",
                                                          "sanm": sanm, "best_test_acc": 43.0, "last_test_acc": 43.0}))
    out = tmp_path / "figures" / "curves.png"
    report([str(tmp_path), "--plot", str(out)])
    assert out.read_bytes().startswith(PNG) and f"wrote {out}" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no finished run logged 'gmm_auc'"):
        report([str(tmp_path), "--plot", str(out), "--metric", "gmm_auc"])
