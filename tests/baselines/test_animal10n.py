"""dataset=animal10n: the release's layout (training/ and testing/, label = the number before the underscore),
its own noisy labels (the share of wrong ones unknown), and SANM end to end on a generated miniature."""

import json

import numpy as np
import pytest
from PIL import Image

from baselines.common.data import ANIMAL10N_CLASSES, DatasetError, load_dataset
from baselines.common.engine import ConfigurationError, run
from baselines.registry import BASELINES

from method_steps import smoke_config


def write_animal10n(root, per_class=(3, 1), size=64, seed=0):
    """root/training/<label>_<id>.jpg and root/testing/..., as released (ids run on across classes)."""
    rng = np.random.default_rng(seed)
    for split, count in zip(("training", "testing"), per_class):
        (root / split).mkdir(parents=True)
        for label in range(len(ANIMAL10N_CLASSES)):
            for k in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / f"{label}_{label * 100 + k}.jpg")
    return root


def _cfg(method, *overrides):
    return smoke_config(method, "progress=false", "dataset.train_subset=null", *overrides)


def test_labels_come_from_the_file_names(tmp_path):
    data = load_dataset("animal10n", root=write_animal10n(tmp_path / "a10n"), cache_dir=tmp_path / "cache")
    assert data.train_images.shape == (30, 3, 64, 64) and data.test_images.shape == (10, 3, 64, 64)
    assert np.bincount(data.train_labels).tolist() == [3] * 10 and data.test_labels.tolist() == list(range(10))
    assert data.class_names[9] == "guinea pig" and not data.labels_known


def test_a_missing_folder_or_a_foreign_file_name_says_what_the_layout_is(tmp_path):
    with pytest.raises(DatasetError, match="animal10n: .*training not found; expected .*<label>_<id>.jpg"):
        load_dataset("animal10n", root=tmp_path / "nothing", cache_dir=tmp_path / "cache")
    root = write_animal10n(tmp_path / "a10n")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "testing" / "cat_1.jpg")
    with pytest.raises(DatasetError, match="cat_1.jpg does not start with a label 0-9"):
        load_dataset("animal10n", root=root, cache_dir=tmp_path / "cache")


@pytest.mark.slow
@pytest.mark.parametrize("sanm", [[], ["+sanm=on"]])
def test_ce_with_a_torchvision_resnet18_runs_on_it_and_reports_the_noise_as_unknown(tmp_path, sanm):
    root = write_animal10n(tmp_path / "a10n")
    overrides = ["dataset=animal10n", f"dataset.root={root}", f"dataset.cache_dir={tmp_path / 'cache'}",
                 "model=torchvision", "model.arch=resnet18", *sanm]
    summary = run(_cfg("ce", *overrides), BASELINES["ce"], run_dir=tmp_path / "run")
    assert summary["epochs"] == 2 and summary["noise_rate_actual"] is None
    assert "rate_actual: unknown" in (tmp_path / "run" / "resolved.yaml").read_text()
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert ("loss/reconstruction" in last) == bool(sanm)
    with pytest.raises(ConfigurationError, match="method.noise_rate=auto needs the share of wrong labels"):
        run(_cfg("cdr", *overrides, "trainer.val_fraction=0.2"), BASELINES["cdr"], run_dir=tmp_path / "cdr")
