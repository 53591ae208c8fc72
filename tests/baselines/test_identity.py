"""What a run trains, and when a checkpoint may be continued (identity.py): the refusals and their messages, the
keys a resume may change, and the upgrade of identities saved before a key existed."""

from pathlib import Path

import pytest

from baselines.common.identity import (CHECKPOINT_FORMAT, RESUMABLE_KEYS, ResumeRefused, check_resumable,
                                       run_identity, upgrade_identity)
from method_steps import smoke_config

CHECKPOINT = Path("outputs/ce/digits/sym_0.5/off/seed0/checkpoints/last.pt")


def _config(*overrides):
    """CE's smoke config as a command composes it, so its identity holds every key of today's."""
    return smoke_config("ce", "noise=sym_0.5", *overrides)


@pytest.fixture
def identity():
    return run_identity(_config(), "digits-1234")


def _checkpoint(identity, method_name="ce", format=CHECKPOINT_FORMAT):
    return {"format": format, "method_name": method_name, "identity": identity, "networks": {}}


def test_the_identity_leaves_out_what_a_resume_may_change_and_the_noise_preset_name():
    base = run_identity(_config(), "digits-1234")
    assert set(RESUMABLE_KEYS) & base.keys() == set() and "noise.name" not in base
    assert base["dataset"] == "digits-1234" and base["noise.rate"] == "0.5"
    assert run_identity(_config("trainer.epochs=300", "trainer.precision=bf16"), "digits-1234") == base
    changed = run_identity(_config("trainer.lr=0.123"), "digits-1234")
    assert {key for key in base if changed[key] != base[key]} == {"trainer.lr"}


def test_a_checkpoint_of_the_same_run_continues(identity):
    check_resumable(_checkpoint(identity), identity, CHECKPOINT, "ce")  # no refusal


def test_a_checkpoint_of_the_old_format_is_refused_with_what_to_do(identity):
    with pytest.raises(ResumeRefused, match=r"older version of this library .* overwrite=true"):
        check_resumable(_checkpoint(identity, format=1), identity, CHECKPOINT, "ce")


def test_a_checkpoint_of_another_method_is_refused_naming_both(identity):
    with pytest.raises(ResumeRefused, match=r"written by dividemix, not ce; use another run_dir"):
        check_resumable(_checkpoint(identity, method_name="dividemix"), identity, CHECKPOINT, "ce")


def test_a_refusal_names_the_first_six_keys_that_differ_and_counts_the_rest(identity):
    saved = {**identity, **{f"trainer.extra{i}": '"x"' for i in range(7)}, "dataset": "digits-" + "9" * 60}
    with pytest.raises(ResumeRefused) as refusal:
        check_resumable(_checkpoint(saved), identity, CHECKPOINT, "ce")
    message = str(refusal.value)
    # sorted keys: dataset first, its 66-character value cut to 18 + "..." + 18; a key missing now reads "unset"
    assert f"differs from the run in {CHECKPOINT.parent.parent} in dataset (digits-99999999999..." in message
    assert "-> digits-1234), trainer.extra0 (\"x\" -> unset)" in message
    assert "trainer.extra4" in message and "trainer.extra5" not in message and "and 2 more" in message


@pytest.mark.parametrize("weights,decoder", [
    (["augmenter.decoder.layers.0.weight", "augmenter.decoder.layers.1.running_mean"], '"bn"'),
    (["augmenter.decoder.layers.0.weight", "augmenter.decoder.layers.0.bias"], '"linear"'),
])
def test_a_saved_null_decoder_is_read_from_the_saved_weights(weights, decoder):
    saved = {"sanm.enabled": "true", "sanm.preset": '"paper"', "sanm.decoder": "null", "sanm.beta": "null"}
    networks = {"net1": {"model": {}, "sanm": dict.fromkeys(weights)}, "net2": {"model": {}}}
    upgraded = upgrade_identity(saved, networks)
    assert upgraded["sanm.decoder"] == decoder and upgraded["sanm.beta"] == "1.0"
    official = upgrade_identity({**saved, "sanm.preset": '"official"'}, {})  # no weights: the preset's value
    assert official["sanm.decoder"] == '"linear"' and official["sanm.beta"] == "0.02"


@pytest.mark.parametrize("pretrained,epochs", [('"auto"', "2"), ("null", '"auto"')])
def test_checkpoints_from_before_issue_42_keys_resume_as_they_trained(pretrained, epochs):
    """pretrained=auto pre-trained 2 epochs before pretrain_epochs existed (only the smoke and first-run presets set
    it), and every network returned logits before model.softmax_output."""
    upgraded = upgrade_identity({"pretrained": pretrained})
    assert upgraded["pretrain_epochs"] == epochs and upgraded["model.softmax_output"] == "false"
