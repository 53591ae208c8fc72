"""noise=cifar10n_*|cifar100n_noisy: each preset reads its key of the published CIFAR-N file (a generated
miniature here, in the release's layout: one dict of label arrays)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from baselines.common.engine import ConfigurationError, run
from baselines.registry import BASELINES

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"cifar10n_aggre": "aggre_label", "cifar10n_random1": "random_label1", "cifar10n_random2": "random_label2",
        "cifar10n_random3": "random_label3", "cifar10n_worst": "worse_label", "cifar100n_noisy": "noisy_label"}


def _cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="ce", overrides=["+experiment=smoke", "progress=false", *overrides])


@pytest.mark.parametrize("preset", sorted(KEYS))
def test_each_preset_names_its_key_of_the_cifar_n_file(preset):
    noise = _cfg(f"noise={preset}").noise
    assert (noise.type, noise.file_key, noise.name) == ("file", KEYS[preset], preset)


@pytest.mark.slow
def test_a_preset_trains_on_its_labels_and_asks_for_the_file_when_missing(tmp_path):
    n = _cfg().dataset.train_subset  # the smoke subset: a real file holds CIFAR's 50k training labels, in its order
    rng = np.random.default_rng(0)
    labels = {key: rng.integers(0, 10, n) for key in KEYS.values()}
    torch.save(labels, tmp_path / "CIFAR-10_human.pt")
    summary = run(_cfg("noise=cifar10n_worst", f"noise.file={tmp_path / 'CIFAR-10_human.pt'}", "trainer.epochs=1"),
                  BASELINES["ce"], run_dir=tmp_path / "worst")
    assert 0.8 < summary["noise_rate_actual"] < 0.95  # random labels: about 90% differ from the true ones
    resolved = (tmp_path / "worst" / "resolved.yaml").read_text()
    assert "file_key: worse_label" in resolved and "name: cifar10n_worst" in resolved
    with pytest.raises(ConfigurationError, match="CIFAR-10_human.pt"):
        run(_cfg("noise=cifar10n_aggre"), BASELINES["ce"], run_dir=tmp_path / "missing")
