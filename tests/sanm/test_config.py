"""SANMConfig travels: immutable, hashable, a plain dict and back, and loadable with weights_only=True."""

import copy
import dataclasses
import io

import pytest
import torch

from sanm_plugin import SANMConfig


@pytest.mark.parametrize("config", [SANMConfig.paper(), SANMConfig.official(mu=0.3)])
def test_to_dict_and_from_mapping_round_trip(config):
    values = config.to_dict()
    assert all(isinstance(v, (str, float, int, bool)) for v in values.values())
    assert SANMConfig.from_mapping(values) == config


def test_a_field_cannot_change_but_copies_that_reassign_it_work():
    config = SANMConfig.official()
    with pytest.raises(dataclasses.FrozenInstanceError, match="immutable.*SANMConfig.paper"):
        config.mu = 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.validate = 1  # an equal value of another type is a change too
    # what Lightning's apply_to_collection does to a dataclass in save_hyperparameters: copy, reassign each field
    duplicate = copy.deepcopy(config)
    for field in dataclasses.fields(config):
        setattr(duplicate, field.name, getattr(config, field.name))
    assert duplicate == config and hash(duplicate) == hash(config)
    assert dataclasses.replace(config, mu=0.5).mu == 0.5


def test_a_checkpoint_holding_a_config_loads_with_weights_only():
    buffer = io.BytesIO()
    torch.save({"hyper_parameters": {"sanm_config": SANMConfig.official(beta=0.5)}}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["hyper_parameters"]["sanm_config"]
    assert loaded == SANMConfig.official(beta=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.beta = 1.0
