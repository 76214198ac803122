"""Weight files: round trip and clear failures for bad files."""

import json

import jax
import numpy as np
import pytest

from ase_learn2hop.features import FeatureSet
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.weights import WeightFileError, load_weights, save_weights


@pytest.fixture
def saved(tmp_path):
    config = LearnedOptimizerConfig(features=FeatureSet(radial=False))
    theta = init_theta(jax.random.key(1), config)
    theta["alpha"] = theta["alpha"] + 0.25
    path = save_weights(
        tmp_path / "tiny",
        theta,
        config,
        horizon=200,
        systems=["lj13"],
        seed=3,
        commit="abc",
        metrics={"meta_loss": -0.9},
    )
    return path, theta, config


def test_round_trip_keeps_parameters_config_and_manifest(saved):
    path, theta, config = saved
    for name in (path, path.with_suffix(".safetensors"), path.with_suffix("")):
        loaded = load_weights(name)
        assert loaded.config == config
        assert loaded.horizon == 200
        assert loaded.manifest["systems"] == ["lj13"]
        assert loaded.manifest["seed"] == 3
        for a, b in zip(
            jax.tree_util.tree_leaves(loaded.theta), jax.tree_util.tree_leaves(theta)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightFileError, match="no weight manifest"):
        load_weights(tmp_path / "absent.json")


def test_corrupt_manifest_is_a_clear_error(saved):
    path, _, _ = saved
    path.write_text("{not json")
    with pytest.raises(WeightFileError, match="corrupt weight manifest"):
        load_weights(path)


def test_checksum_mismatch_is_detected(saved):
    path, _, _ = saved
    tensors = path.with_suffix(".safetensors")
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        load_weights(path)


def test_truncated_parameters_are_a_clear_error(saved):
    path, _, _ = saved
    tensors = path.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:100])
    manifest = json.loads(path.read_text())
    import hashlib

    manifest["sha256"] = hashlib.sha256(tensors.read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))
    with pytest.raises(WeightFileError, match="corrupt parameters file"):
        load_weights(path)


def test_feature_config_mismatch_is_a_clear_error(saved):
    path, _, _ = saved
    manifest = json.loads(path.read_text())
    manifest["config"]["features"]["radial"] = True
    path.write_text(json.dumps(manifest))
    with pytest.raises(WeightFileError, match="shape"):
        load_weights(path)


def test_foreign_json_is_refused(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(WeightFileError, match="not an ase_learn2hop weight manifest"):
        load_weights(tmp_path / "other.json")


def test_weights_bounded_by_size_are_picked_only_when_the_size_is_known():
    """lj_hopping_time is the hopping default up to 26 atoms; a caller that
    does not say the size gets the weights for every size."""
    from ase_learn2hop.weights import default_weights_for

    def picked(n_atoms):
        return default_weights_for("lj", "lj", "LJ", "hopping", n_atoms).name

    assert picked(26) == "lj_hopping_time"
    assert picked(27) == "lj_hopping"
    assert picked(None) == "lj_hopping"
    assert default_weights_for("lj", "lj", "LJ", "paper", 13).name == "lj"
