"""Compose the real configs in-process (Hydra's compose API): every primary x every preset."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from baselines.common.sanm_hook import SANMSettings
from baselines.registry import BASELINES, METHODS, PRETRAINING  # importing it registers every schema
from sanm_plugin import SANMConfig

CONF = Path(__file__).resolve().parents[2] / "conf"
SANM_PRESETS = sorted(p.stem for p in (CONF / "sanm").glob("*.yaml"))
NOISES = sorted(p.stem for p in (CONF / "noise").glob("*.yaml"))


def _compose(name, overrides=(), conf=CONF):
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted({**BASELINES, **PRETRAINING}))
@pytest.mark.parametrize("sanm", [None, *SANM_PRESETS])
def test_every_primary_composes_with_every_sanm_preset_and_smoke(method, sanm):
    overrides = ["+experiment=smoke"] + ([f"+sanm={sanm}"] if sanm else [])
    cfg = _compose(method, overrides)
    assert cfg.method.name == method and cfg.dataset.name == "digits"
    assert cfg.hydra.run.dir.endswith(f"{method}/digits/none/{sanm or 'off'}/seed0")
    if sanm and cfg.sanm.enabled:
        settings = SANMSettings.resolve(cfg.sanm, cfg.method, 2)
        assert isinstance(settings.config, SANMConfig)
        expected = {"official": SANMConfig.official(validate=False), "paper": SANMConfig.paper(validate=False),
                    "on": SANMConfig.paper(**METHODS[method].sanm_defaults, validate=False)}[sanm]
        assert settings.config == expected  # the engine's inputs are valid by construction


@pytest.mark.slow
def test_sanm_on_is_each_method_as_measured_and_sanm_paper_the_equations_as_written():
    """+sanm=on: the paper's equations with the method's sanm_defaults (its class); +sanm=paper: beta 1, mu 0.2,
    everything SANMConfig.paper() is, for every method; an explicit key beats both."""
    assert BASELINES["dividemix"].sanm_defaults == {"beta": 0.02, "mu": 0.1} and BASELINES["ce"].sanm_defaults == {}
    assert BASELINES["elr_plus"].sanm_defaults == {"beta": 0.02, "mu": 0.1}
    on = SANMSettings.resolve(_compose("dividemix", ["+sanm=on"]).sanm, _compose("dividemix").method, 10)
    assert on.config == SANMConfig.paper(beta=0.02, mu=0.1, validate=False)
    for method in ("dividemix", "ce"):
        paper = SANMSettings.resolve(_compose(method, ["+sanm=paper"]).sanm, _compose(method).method, 10)
        assert paper.config == SANMConfig.paper(validate=False) and paper.config.beta == 1.0 and paper.config.mu == 0.2
    given = _compose("dividemix", ["+sanm=on", "sanm.beta=0.3"])
    assert SANMSettings.resolve(given.sanm, given.method, 10).config.beta == 0.3


def test_a_method_declaring_a_sanm_default_that_is_no_field_fails_at_declaration():
    from baselines.common.engine import Method

    with pytest.raises(TypeError, match=r"sanm_defaults name \['bta'\]"):
        type("Typo", (Method,), {"name": "typo_method", "sanm_defaults": {"bta": 0.1}})
    with pytest.raises(ValueError, match="beta"):
        type("Negative", (Method,), {"name": "negative_method", "sanm_defaults": {"beta": -1.0}})


@pytest.mark.parametrize("noise", NOISES)
def test_every_noise_option_composes(noise):
    cfg = _compose("ce", [f"noise={noise}"])
    assert cfg.noise.type in ("none", "sym", "asym", "pairflip", "idn", "file")
    if cfg.noise.type in ("sym", "asym", "pairflip", "idn"):
        assert cfg.noise.name == noise


def test_rate_override_renames_the_run():
    cfg = _compose("ce", ["noise=sym_0.5", "noise.rate=0.3"])
    assert cfg.noise.rate == 0.3 and cfg.noise.name == "sym_0.3"


@pytest.mark.parametrize("override", ["+sanm=on sanm.mask_ratoi=0.1", "trainer.epoch=3", "model.widht=8", "dataset.trainsubset=3"])
def test_mistyped_keys_fail(override):
    with pytest.raises(ConfigCompositionException):
        _compose("ce", override.split())


def test_a_preset_with_a_key_the_schema_lacks_fails(tmp_path):
    conf = tmp_path / "conf"
    import shutil

    shutil.copytree(CONF, conf)
    (conf / "experiment" / "typo.yaml").write_text("# @package _global_\ntrainer:\n  epoch: 3\n")
    with pytest.raises(ConfigCompositionException):
        _compose("ce", ["+experiment=typo"], conf=conf)


def test_sanm_overrides_reach_the_hook_config():
    cfg = _compose("ce", ["+sanm=official", "sanm.mu=0.3", "sanm.train_on=masked"])
    settings = SANMSettings.resolve(cfg.sanm, cfg.method, 2)
    assert settings.config == SANMConfig.official(mu=0.3, validate=False) and settings.train_on == "masked"
    assert settings.target == "label" and settings.warmup_epochs == 2
    with pytest.raises(ValueError, match="mu"):
        SANMSettings.resolve(_compose("ce", ["+sanm=on", "sanm.mu=1.5"]).sanm, cfg.method, 2)


def test_a_sanm_group_read_back_untyped_resolves_like_the_composed_one(tmp_path):
    """Tools that rebuild a run from its resolved.yaml (benchmarks/codivide.py) get a plain DictConfig."""
    cfg = _compose("dividemix", ["+sanm=on", "sanm.beta=0.02", "sanm.train_on=masked"])
    OmegaConf.save(cfg.sanm, tmp_path / "sanm.yaml")
    untyped = OmegaConf.load(tmp_path / "sanm.yaml")
    typed = SANMSettings.resolve(cfg.sanm, cfg.method, 10)
    assert SANMSettings.resolve(untyped, cfg.method, 10) == typed
    assert typed.config == SANMConfig.paper(beta=0.02, mu=0.1, validate=False) and typed.train_on == "masked"


AUGMENTS = sorted(p.stem for p in (CONF / "augment").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("augment", AUGMENTS)
def test_every_augment_option_composes_and_builds(augment):
    from baselines.common.augment import AUGMENT_PRESETS, build_augment

    cfg = _compose("dividemix", [f"augment={augment}"])
    assert cfg.augment.name == augment and set(AUGMENTS) == set(AUGMENT_PRESETS)
    built = build_augment(cfg.augment.name, (0.5,) * 3, (0.5,) * 3, OmegaConf.to_container(cfg.augment))
    assert (built.policy.policy if built.policy else None) == AUGMENT_PRESETS[augment]["policy"]


@pytest.mark.slow
def test_methods_train_on_their_upstream_views_by_default():
    assert {m: _compose(m).augment.name for m in BASELINES} == {
        m: "none" if m == "coteaching" else "weak" for m in BASELINES}
    assert _compose("ce", ["augment=randaugment", "augment.magnitude=5"]).augment.magnitude == 5


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dividemix", "c2d"])
def test_official_recipe_composes_its_pipeline(method):
    cfg = _compose(method, ["+sanm=official", "+recipe=official", "noise=sym_0.9"])
    assert cfg.augment.name == "autoaugment" and cfg.method.recipe == "official"
    assert list(cfg.method.mix_views) == ["autoaugment", "autoaugment", "randaugment", "randaugment"]
    assert cfg.method.warmup_grad_clip == 1.0 and cfg.method.gmm_max_iter == 10
    assert cfg.method.warmup_augment == "c2d_warmup"
    assert cfg.model.name == "resnet18" and cfg.pretrained == "auto"  # C2D's network, from a SimCLR encoder
    for order in (["+recipe=official", "+experiment=smoke"], ["+experiment=smoke", "+recipe=official"]):
        smoke = _compose(method, order)
        assert smoke.trainer.epochs == 2  # the recipe leaves the run length to its auto
        assert (smoke.model.width, smoke.pretrain_epochs) == (8, 2)  # and the smoke sizes to the preset
    with pytest.raises(ConfigCompositionException):  # a method without the recipe's keys says so at composition
        _compose("ce", ["+recipe=official"])


def test_smoke_preset_is_small_and_on_cpu():
    cfg = _compose("ce", ["+experiment=smoke", "+sanm=on"])
    assert cfg.device == "cpu" and cfg.trainer.epochs == 2 and cfg.method.warmup_epochs == 1
    assert OmegaConf.select(cfg, "dataset.train_subset") <= 500


@pytest.mark.slow
def test_image_folders_name_their_run_directory_by_folder():
    dirs = [_compose("ce", ["dataset=image_folder", f"dataset.root=/data/{name}/cifar"]).hydra.run.dir
            for name in ("a", "b")]
    parts = [d.split("/")[-4] for d in dirs]
    assert parts[0] != parts[1] and all(p.startswith("image_folder-cifar-") for p in parts)
    same = _compose("ce", ["dataset=image_folder", "dataset.root=/data/a/cifar/"]).hydra.run.dir
    assert same == dirs[0]  # the folder, however it is spelled
