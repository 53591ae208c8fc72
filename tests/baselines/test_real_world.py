"""dataset=clothing1m and dataset=webvision: their releases' layouts read into streamed splits, one-line errors
naming a missing file, and CE / DivideMix with and without SANM end to end on generated miniatures."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from baselines.common.data import STREAMED, DatasetError, load_dataset
from baselines.common.engine import ConfigurationError, run
from baselines.common.real_world import CLOTHING1M_CLASSES, CLOTHING1M_FILES, look_up
from baselines.common.streaming import ImageFiles, decode_square
from baselines.registry import BASELINES

from method_steps import ROOT, smoke_config
from real_world_fixtures import write_clothing1m, write_webvision


def _cfg(method, *overrides, smoke=True):
    if smoke:
        return smoke_config(method, "dataset.train_subset=null", "progress=false", *overrides)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=method, overrides=["device=cpu", "progress=false", *overrides])


@pytest.mark.parametrize("annotations", [True, False])
def test_clothing1m_reads_noisy_train_labels_and_clean_val_and_test_labels(tmp_path, annotations):
    expected = write_clothing1m(tmp_path / "c1m", annotations=annotations)
    data = load_dataset("clothing1m", root=tmp_path / "c1m", decode_size=40)
    assert data.streamed and not data.labels_known and data.class_names == list(CLOTHING1M_CLASSES)
    assert data.image_shape == (3, 40, 40) and STREAMED["clothing1m"] == 256
    for files, labels, split in ((data.train_images, data.train_labels, "train"),
                                 (data.val_images, data.val_labels, "val"),
                                 (data.test_images, data.test_labels, "test")):
        assert isinstance(files, ImageFiles)
        assert [p.decode() for p in files.paths] == expected[split][0]
        assert labels.tolist() == expected[split][1]
    # every third training label is the crawl's wrong one, so the split holds labels of other classes
    assert (data.train_labels != np.repeat(np.arange(14), 3)).sum() == 14
    first = data.train_images.path(0)
    assert np.array_equal(data.train_images.read(0), decode_square(first, 40))


@pytest.mark.parametrize("missing", CLOTHING1M_FILES)
def test_clothing1m_names_the_missing_annotation_file(tmp_path, missing):
    write_clothing1m(tmp_path / "c1m")
    (tmp_path / "c1m" / "annotations" / missing).unlink()
    with pytest.raises(DatasetError, match=f"clothing1m: .*{missing} not found; expected noisy_label_kv.txt"):
        load_dataset("clothing1m", root=tmp_path / "c1m")


def test_clothing1m_names_a_key_without_a_label_a_bad_line_and_a_missing_image(tmp_path):
    root = tmp_path / "c1m"
    expected = write_clothing1m(root)
    notes = root / "annotations"
    keys = notes / "clean_test_key_list.txt"
    keys.write_text(keys.read_text() + "images/0/00/stray.jpg\n")
    with pytest.raises(DatasetError, match="clean_test_key_list.txt against .*: images/0/00/stray.jpg has no label"):
        load_dataset("clothing1m", root=root)
    write_clothing1m(root)  # restore
    kv = notes / "clean_label_kv.txt"
    kv.write_text(kv.read_text() + "images/1/01/x.jpg shirt\n")
    with pytest.raises(DatasetError, match=r"line \d+ of .*clean_label_kv.txt is .*expected '<image path> <label>'"):
        load_dataset("clothing1m", root=root)
    write_clothing1m(root)
    (root / expected["train"][0][0]).unlink()
    with pytest.raises(DatasetError, match=f"clothing1m: .*{expected['train'][0][0]} not found"):
        load_dataset("clothing1m", root=root)


def test_look_up_finds_labels_of_unsorted_tables():
    table = np.array([b"c", b"a", b"b"]), np.array([2, 0, 1])
    assert look_up(np.array([b"b", b"c", b"a", b"b"]), *table, what="t").tolist() == [1, 2, 0, 1]
    with pytest.raises(DatasetError, match="t: d has no label there"):
        look_up(np.array([b"a", b"d"]), *table, what="t")


@pytest.mark.parametrize("imagenet", ["ids", "synsets"])
def test_webvision_keeps_the_first_classes_and_adds_the_imagenet_val_folders(tmp_path, imagenet):
    root = tmp_path / "wv"
    expected = write_webvision(root, classes=4, imagenet=imagenet)
    data = load_dataset("webvision", root=root, decode_size=40, first_classes=3, imagenet_val=root / "imagenet_val")
    assert data.num_classes == 3 and data.class_names == ["n00000000", "n00000001", "n00000002"]
    assert data.train_labels.tolist() == [c for c in expected["train"][1] if c < 3] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.test_labels.tolist() == [0, 1, 2] and data.test_images.root == root / "val_images_256"
    assert not data.labels_known and data.val_labels is None and STREAMED["webvision"] == 320
    files, labels = data.extra_tests["imagenet"]
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] and files.shape == (6, 3, 40, 40)
    assert [p.decode() for p in files.paths] == expected["imagenet"][0][:6]
    assert load_dataset("webvision", root=root, decode_size=40).extra_tests == {}


def test_webvision_errors_name_what_is_missing(tmp_path):
    root = tmp_path / "wv"
    write_webvision(root, imagenet=None)
    (root / "info" / "val_filelist.txt").unlink()
    with pytest.raises(DatasetError, match="webvision: .*val_filelist.txt not found; expected .*train_filelist_google"):
        load_dataset("webvision", root=root)
    write_webvision(root, imagenet=None)
    with pytest.raises(DatasetError, match=r"dataset.imagenet_val=.*imagenet_val not found; give ImageNet's val"):
        load_dataset("webvision", root=root, imagenet_val=root / "imagenet_val")
    write_webvision(root, classes=4)
    with pytest.raises(DatasetError, match=r"imagenet_val/4 not found; dataset.imagenet_val needs one folder per class"):
        load_dataset("webvision", root=root, first_classes=5, imagenet_val=root / "imagenet_val")
    with pytest.raises(DatasetError, match="first_classes must be an integer in 1..1000"):
        load_dataset("webvision", root=root, first_classes=0)
    with pytest.raises(DatasetError, match="dataset=webvision needs dataset.root="):
        load_dataset("webvision")


def _small(dataset, root, *extra):
    """A torchvision ResNet-18 on 40-pixel decodes cropped to 32 (augment=imagenet), 2 epochs."""
    return [f"dataset={dataset}", f"dataset.root={root}", "dataset.decode_size=40", "augment=imagenet",
            "augment.crop_size=32", "model=torchvision", "model.arch=resnet18", "noise=none", *extra]


@pytest.mark.slow
def test_a_sigterm_to_every_process_of_a_streamed_run_stops_it_as_ctrl_c_does(tmp_path):
    """SLURM sends SIGTERM to every process of a job, the decode workers included: they leave quietly, and the run
    stops with its one line and exit code 143, not with the DataLoader's "worker killed by signal" traceback."""
    write_clothing1m(tmp_path / "c1m", per_class=(12, 2, 2))
    args = ["+experiment=smoke", "dataset.train_subset=null", *_small("clothing1m", tmp_path / "c1m"),
            "trainer.epochs=6", "trainer.batch_size=16", "dataset.workers=2", f"output_root={tmp_path / 'out'}",
            f"dataset.cache_dir={tmp_path / 'cache'}"]
    run_dir = tmp_path / "out" / "ce" / "clothing1m" / "none" / "off" / "seed0"
    proc = subprocess.Popen([sys.executable, "-m", "baselines.ce", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # a group, as a job is
    while not (run_dir / "checkpoints" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=1800)  # a hang guard only
    assert proc.returncode == 143, err
    line, = err.strip().splitlines()
    assert line.startswith("interrupted by SIGTERM: epoch ") and line.endswith(" resume=true")
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [[], ["+sanm=on"]])
def test_ce_on_clothing1m_selects_on_its_clean_val_split(tmp_path, sanm):
    write_clothing1m(tmp_path / "c1m")
    summary = run(_cfg("ce", *_small("clothing1m", tmp_path / "c1m", *sanm)), BASELINES["ce"],
                  run_dir=tmp_path / "run")
    assert summary["epochs"] == 2 and summary["noise_rate_actual"] is None
    assert 0 <= summary["test_acc_at_best_val"] <= 100 and summary["best_val_epoch"] in (1, 2)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_acc" in last and ("loss/reconstruction" in last) == bool(sanm)


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [[], ["+sanm=on"]])
def test_ce_on_webvision_reports_the_imagenet_val_accuracy(tmp_path, sanm):
    write_webvision(tmp_path / "wv", classes=3)
    overrides = _small("webvision", tmp_path / "wv", "dataset.first_classes=3",
                       f"dataset.imagenet_val={tmp_path / 'wv' / 'imagenet_val'}", "dataset.workers=0", *sanm)
    summary = run(_cfg("ce", *overrides), BASELINES["ce"], run_dir=tmp_path / "run")
    assert summary["epochs"] == 2 and 0 <= summary["last_test_acc_imagenet"] <= summary["best_test_acc_imagenet"]
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "test_acc_imagenet" in last and ("loss/reconstruction" in last) == bool(sanm)


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [[], ["+sanm=on"]])
def test_the_clothing1m_dividemix_preset_runs_at_a_small_size(tmp_path, sanm):
    """+experiment=clothing1m_dividemix with its network and epochs made small: the epoch pool, lambda_u 0
    with only the labeled rows trained, and the clean val split, ± SANM."""
    write_clothing1m(tmp_path / "c1m", per_class=(4, 1, 1))
    overrides = [*_small("clothing1m", tmp_path / "c1m"), "+experiment=clothing1m_dividemix", "model.arch=resnet18",
                 "model.weights=null", "dataset.decode_size=40", "augment.crop_size=32", "trainer.epochs=2",
                 "trainer.batch_size=8", "trainer.lr_milestones=[1]", "method.epoch_pool=28", "dataset.workers=0",
                 *sanm]
    cfg = _cfg("dividemix", *overrides, smoke=False)
    assert cfg.method.lambda_u == 0 and cfg.method.drop_unlabeled and cfg.trainer.weight_decay == 1e-3
    summary = run(cfg, BASELINES["dividemix"], run_dir=tmp_path / "run")
    assert summary["epochs"] == 2 and "test_acc_at_best_val" in summary
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    # the labels' truth is unknown: no selection precision / recall or mask ratios by truth, which would read 1
    assert "labeled_fraction_net1" in last and not any(k.startswith(("selection_", "mask_ratio_")) for k in last)


@pytest.mark.slow
def test_the_clothing1m_preset_asks_for_its_imagenet_weights_once_the_data_are_there(tmp_path):
    write_clothing1m(tmp_path / "c1m")
    cfg = _cfg("dividemix", "+experiment=clothing1m_dividemix", f"dataset.root={tmp_path / 'c1m'}", smoke=False)
    with pytest.raises(ConfigurationError, match=r"model.weights=resnet50_imagenet.pt: no such file; save a state dict"):
        run(cfg, BASELINES["dividemix"], run_dir=tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("preset, expected", [
    ("clothing1m_dividemix", r"noisy_label_kv.txt not found; expected .*see docs/real-world.md"),
    ("webvision_dividemix", r"train_filelist_google.txt not found; expected .*see docs/real-world.md"),
    ("animal10n", r"absent/training not found; expected .*<label>_<id>.jpg")])
def test_each_preset_fails_only_for_want_of_its_data(tmp_path, preset, expected):
    cfg = _cfg("dividemix", f"+experiment={preset}", f"dataset.root={tmp_path / 'absent'}", smoke=False)
    with pytest.raises(ConfigurationError, match=expected):
        run(cfg, BASELINES["dividemix"], run_dir=tmp_path / "run")
