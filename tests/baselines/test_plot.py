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
@pytest.mark.slow
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
@pytest.mark.slow
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


@pytest.mark.slow
def test_every_figure_is_written_at_the_end_of_a_sanm_run(sanm_run):
    written = sorted(p.name for p in (sanm_run / "plots").glob("*.png"))
    assert written == ["accuracy.png", "gallery.png", "mask_ratio.png", "quality.png"]  # CE selects nothing
    for name in written:
        data = (sanm_run / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    assert "plots (4) in" in (sanm_run / "run.log").read_text()


@pytest.mark.slow
def test_taking_snapshots_does_not_change_what_the_run_trains(sanm_run, tmp_path):
    _smoke_run(tmp_path / "quiet", "+sanm=on", "plots.epochs=[]", "plots.enabled=false")
    assert not (tmp_path / "quiet" / "diagnostics").exists() and not (tmp_path / "quiet" / "plots").exists()
    drop = {"epoch_seconds"}
    assert ([{k: v for k, v in r.items() if k not in drop} for r in _records(tmp_path / "quiet")]
            == [{k: v for k, v in r.items() if k not in drop} for r in _records(sanm_run)])


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ---------------------------------------------------------------------- readable for a run of any length
@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if plot.matplotlib_available():
        plot._pyplot().close("all")


def _history(epochs: int) -> list[dict]:
    """A run stuck at chance on 10 classes (test_acc near 10%), with SANM's mean mask ratios and a selection."""
    return [{"epoch": e, "lr": 0.02 if e <= 0.6 * epochs or epochs < 3 else 0.002, "test_acc": 10.0 + (e % 3) / 10,
             "val_acc": 10.2, "mask_ratio_noisy": 0.15, "mask_ratio_clean": 0.05, "selection_precision_net1": 0.8,
             "selection_recall_net1": 0.7, "selection_precision_net2": 0.82, "selection_recall_net2": 0.69}
            for e in range(1, epochs + 1)]


def _snapshot(run_dir: Path, epoch: int, classes: int = 10, labels_known: bool = True,
              peak_box=(10, 20, 10, 20), trough_box=(0, 0, 0, 0)) -> None:
    """diagnostics/epoch_NNN.npz as Snapshots.save writes it: 40 samples' G and r, a gallery of one 32x32 image."""
    rng = np.random.default_rng(epoch)
    quality = rng.uniform(0, 1, 40)
    image = np.full((1, 3, 32, 32), 128, dtype=np.uint8)
    folder = run_dir / "diagnostics"
    folder.mkdir(exist_ok=True)
    np.savez(folder / f"epoch_{epoch:03d}.npz", epoch=np.array(epoch), network=np.array("net1"),
             clean_prob=quality.astype(np.float16), mask_ratio=(0.2 * (1 - quality)).astype(np.float16),
             is_clean=np.arange(40) % 2 == 0 if labels_known else np.ones(40, bool),
             labels_known=np.array(labels_known), class_names=np.array([f"c{i}" for i in range(classes)]),
             gallery_index=np.array([0]), gallery_images=image, gallery_masked=image,
             gallery_cam=np.zeros((1, 32, 32), np.float16), gallery_peak_box=np.array([peak_box]),
             gallery_trough_box=np.array([trough_box]), gallery_ratio=np.array([0.1], np.float32),
             gallery_quality=np.array([0.5], np.float32), gallery_label=np.array([0]),
             gallery_true_label=np.array([1]), gallery_predicted=np.array([0]))


def _classes(run_dir: Path, count: int) -> None:
    (run_dir / "resolved.yaml").write_text(f"method:\n  name: dividemix\ndataset:\n  name: cifar10\n  num_classes: "
                                           f"{count}\nnoise:\n  name: sym_0.9\nsanm:\n  name: 'on'\nseed: 0\n")


def _with_data(line) -> bool:
    return len(line.get_xdata()) > 0


def _is_curve(line) -> bool:
    """A line of data, not a reference line (chance, an lr drop: axhline / axvline span the axes instead)."""
    return len(line.get_xdata()) > 0 and line.get_transform() is line.axes.transData


def _has_marker(line) -> bool:
    return line.get_marker() not in (None, "None", "", " ")


def _chance_lines(axis) -> list:
    return [line for line in axis.get_lines() if str(line.get_label()).startswith("chance")]


@pytest.mark.slow
@pytest.mark.parametrize("epochs", [1, 2, 300])
def test_every_figure_reads_for_a_run_of_1_2_or_300_epochs(tmp_path, epochs):
    run_dir = _fake_run(tmp_path / "run", _history(epochs))
    _classes(run_dir, 10)
    for epoch in sorted({1, epochs}):
        _snapshot(run_dir, epoch)
    run = plot.RunFiles(run_dir)
    for name, (draw, _) in plot.FIGURES.items():
        figure = draw(run)
        assert figure is not None, name
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        shown = [axis for axis in figure.axes if axis.axison]
        for axis in shown:
            if axis.get_xlabel() == "epoch":  # whole epochs, from the first to the last, at any length
                low, high = axis.get_xlim()
                ticks = [t for t in axis.get_xticks() if low <= t <= high]
                assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
                assert low < 1 and high > epochs, (name, low, high)
            for line in filter(_is_curve, axis.get_lines()):  # a short curve marks each epoch: one is a point
                if len(line.get_xdata()) < plot.MARKERS_UP_TO:
                    assert _has_marker(line), (name, line.get_label())
        legends = [axis.get_legend() for axis in shown if axis.get_legend()] + figure.legends
        for legend in legends:  # below the axes, never over a curve
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(axis.get_window_extent(renderer)) for axis in shown), name


def test_a_long_curve_is_a_line_without_markers(tmp_path):
    run_dir = _fake_run(tmp_path / "run", _history(300))
    axis = plot.plot_accuracy(plot.RunFiles(run_dir)).axes[0]
    test_acc = next(line for line in axis.get_lines() if line.get_label() == "test_acc")
    assert len(test_acc.get_xdata()) == 300 and not _has_marker(test_acc)


def test_one_epoch_of_mask_ratios_is_drawn_as_points_from_zero(tmp_path):
    run_dir = _fake_run(tmp_path / "run", _history(1))
    _snapshot(run_dir, 1)
    left, right = plot.plot_mask_ratio(plot.RunFiles(run_dir)).axes
    points = [line for line in right.get_lines() if _with_data(line)]
    assert len(points) == 2 and all(_has_marker(line) for line in points)
    assert {float(line.get_ydata()[0]) for line in points} == {0.05, 0.15}
    assert left.collections and all(len(c.get_offsets()) for c in left.collections)  # the scatter of one snapshot
    assert left.get_ylim() == right.get_ylim() and left.get_ylim()[0] == 0  # from 0, alike, so they compare
    assert right.get_ylim()[1] >= 0.2  # r = 0.2 * (1 - G) at most: every point fits


def test_without_true_labels_the_mask_ratios_are_one_group_and_say_why_no_curve(tmp_path):
    run_dir = _fake_run(tmp_path / "run", [{"epoch": 1, "lr": 0.02, "test_acc": 30.0}])  # Clothing1M-like
    _snapshot(run_dir, 1, labels_known=False)
    figure = plot.plot_mask_ratio(plot.RunFiles(run_dir))
    left, right = figure.axes
    assert [c.get_label() for c in left.collections] == ["every sample (true labels unknown)"]
    note, = right.texts
    assert not right.axison and "needs the true labels" in note.get_text()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    assert right.get_window_extent(renderer).contains(*note.get_window_extent(renderer).get_points().mean(0))


def test_accuracy_is_on_0_to_100_with_chance_at_100_over_the_classes(tmp_path):
    run_dir = _fake_run(tmp_path / "run", _history(5))
    _classes(run_dir, 10)
    axis = plot.plot_accuracy(plot.RunFiles(run_dir)).axes[0]
    assert axis.get_ylim() == (0, 100)  # a flat curve at 10% stays flat, at chance
    chance, = _chance_lines(axis)
    assert list(chance.get_ydata()) == [10.0, 10.0] and chance.get_linestyle() == "--"


def test_the_class_count_comes_from_a_snapshot_else_no_chance_line_is_guessed(tmp_path):
    run_dir = _fake_run(tmp_path / "cifar100", _history(2))  # no resolved.yaml (a run of an older version)
    _snapshot(run_dir, 2, classes=100)
    axis = plot.plot_accuracy(plot.RunFiles(run_dir)).axes[0]
    assert list(_chance_lines(axis)[0].get_ydata()) == [1.0, 1.0]
    unknown = _fake_run(tmp_path / "unknown", _history(2))  # no resolved.yaml, no snapshot: unknown
    axis = plot.plot_accuracy(plot.RunFiles(unknown)).axes[0]
    assert axis.get_ylim() == (0, 100) and not _chance_lines(axis)


@pytest.mark.slow
def test_a_run_records_its_classes_and_its_accuracy_plot_draws_chance(sanm_run):
    assert OmegaConf.load(sanm_run / "resolved.yaml").dataset.num_classes == 10  # the smoke run's digits
    axis = plot.plot_accuracy(plot.RunFiles(sanm_run)).axes[0]
    assert list(_chance_lines(axis)[0].get_ydata()) == [10.0, 10.0]


@pytest.mark.parametrize("peak,trough", [((0, 1, 0, 1), (31, 32, 31, 32)), ((0, 32, 31, 32), (31, 32, 0, 32))])
def test_a_box_of_one_pixel_on_the_image_border_is_drawn_whole(tmp_path, peak, trough):
    run_dir = _fake_run(tmp_path / "run", _history(1))
    _snapshot(run_dir, 1, peak_box=peak, trough_box=trough)
    axis = plot.plot_gallery(plot.RunFiles(run_dir)).axes[0]
    boxes = {patch.get_edgecolor()[:3]: patch for patch in axis.patches}
    assert set(boxes) == {(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)}  # the peak (red) and trough (blue) box, both drawn
    for color, (top, bottom, left, right) in (((1.0, 0.0, 0.0), peak), ((0.0, 0.0, 1.0), trough)):
        box = boxes[color]
        # on the pixel boundaries of pixels top..bottom-1 and left..right-1 (imshow centres pixels on integers)
        assert box.get_xy() == (left - 0.5, top - 0.5)
        assert (box.get_width(), box.get_height()) == (right - left, bottom - top)
        assert min(box.get_width(), box.get_height()) >= 1
        assert not box.get_clip_on()  # the half of the edge outside the image is drawn, not cut to a sliver


def test_report_curves_of_one_epoch_are_points_on_0_to_100_with_chance():
    axis = plot.curves_figure({"ce": [{1: 10.0}, {1: 12.0}], "ce SANM on": [{1: 11.0}]}, "test_acc",
                              num_classes=10).axes[0]
    lines = [line for line in axis.get_lines() if _with_data(line) and not _chance_lines(axis).count(line)]
    assert len(lines) == 2 and all(_has_marker(line) for line in lines)
    ranges = [c for c in axis.collections if len(c.get_segments())]
    assert len(ranges) == 1 and ranges[0].get_segments()[0][:, 1].tolist() == [10.0, 12.0]  # two seeds: their range
    assert axis.get_ylim() == (0, 100) and list(_chance_lines(axis)[0].get_ydata()) == [10.0, 10.0]
    assert not _chance_lines(plot.curves_figure({"ce": [{1: 10.0}]}, "test_acc").axes[0])  # classes unknown
    loss = plot.curves_figure({"ce": [{1: 2.3}, {1: 2.2}]}, "loss/ce", num_classes=10).axes[0]
    assert loss.get_ylim() != (0, 100) and not _chance_lines(loss)  # not an accuracy: its own range, no chance


@pytest.mark.slow
def test_report_plot_draws_chance_only_where_every_run_has_the_same_classes(tmp_path, monkeypatch):
    from baselines import report

    drawn = []
    monkeypatch.setattr(report, "plot_curves", lambda curves, metric, path, num_classes=None: drawn.append(num_classes))
    for dataset, classes in (("cifar10", 10), ("cifar100", 100)):
        run = tmp_path / dataset / "seed0"
        run.mkdir(parents=True)
        (run / "resolved.yaml").write_text(f"seed: 0\ndataset:\n  name: {dataset}\n  num_classes: {classes}\n")
        (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 40.0}) + "\n")
        (run / "summary.json").write_text(json.dumps({"method": "ce", "dataset": dataset, "noise": "sym_0.5",
                                                      "sanm": "off", "best_test_acc": 40.0, "last_test_acc": 40.0}))
    report.main([str(tmp_path / "cifar10"), "--plot", str(tmp_path / "one.png")])
    report.main([str(tmp_path), "--plot", str(tmp_path / "both.png")])
    assert drawn == [10, None]


@pytest.mark.slow  # calls the command's main
def test_the_comparison_draws_both_runs_their_selected_epochs_and_the_wrong_labels_masks(tmp_path, capsys):
    """README's figure: both accuracy curves, each run's epoch of best noisy validation accuracy marked at its test
    accuracy, and per wrongly-labelled gallery image the map with SANM's boxes above the masked image."""
    base = _fake_run(tmp_path / "base", [{"epoch": e, "test_acc": 40.0 + e, "val_acc": [20, 30, 25][e - 1]}
                                         for e in (1, 2, 3)])
    sanm = _fake_run(tmp_path / "sanm", [{"epoch": e, "test_acc": 45.0 + e, "val_acc": [35, 30, 25][e - 1]}
                                         for e in (1, 2, 3)])
    _classes(base, 10)
    _snapshot(sanm, 3, peak_box=(4, 12, 4, 12), trough_box=(0, 2, 0, 2))
    figure = plot.plot_comparison(plot.RunFiles(base), plot.RunFiles(sanm))
    curves, *images = figure.axes
    assert [list(line.get_ydata()) for line in curves.get_lines() if _is_curve(line)] == [[41, 42, 43], [46, 47, 48]]
    picked = [tuple(c.get_offsets()[0]) for c in curves.collections if len(c.get_offsets()) == 1]
    assert picked == [(2, 42), (1, 46)]  # base: best val at epoch 2; SANM: at epoch 1
    assert len(images) == 2  # the one wrongly-labelled image: its map and boxes, its masked view
    assert [len(axis.patches) for axis in images] == [2, 0] and "true c1" in images[0].get_title()
    out = tmp_path / "figure.png"
    assert plot.main(["--compare", str(base), str(sanm), "--output", str(out)]) == 0 and out.stat().st_size > 0
    with pytest.raises(ValueError, match="no gallery snapshot: give the SANM run second"):
        plot.plot_comparison(plot.RunFiles(sanm), plot.RunFiles(base))
    with pytest.raises(SystemExit):
        plot.main(["--compare", str(base), str(sanm)])  # no --output
    assert "needs --output FILE.png" in capsys.readouterr().err
