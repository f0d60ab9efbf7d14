"""Models from configs: backend choice and refusals, and only trusted classes are ever imported."""

import pytest
from omegaconf import OmegaConf

from mpnn.cli import compose
from mpnn.data.spec import DataSpec
from mpnn.models.factory import build_model, resolve_backend


def model_config(name: str) -> dict:
    return OmegaConf.to_container(compose([f"model={name}"]).model, resolve=True)


def test_auto_picks_each_models_fastest_backend():
    assert resolve_backend(model_config("edge_net"), "auto") == "dense"
    assert resolve_backend(model_config("schnet"), "auto") == "pyg"
    assert resolve_backend(model_config("edge_net"), "pyg") == "pyg"


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown backend='jax'; valid: auto, dense, pyg"):
        resolve_backend(model_config("edge_net"), "jax")


def test_a_backend_the_model_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match="SchNetModel .* supports backend=pyg only, not backend=dense"):
        resolve_backend(model_config("schnet"), "dense")


@pytest.mark.parametrize("target", ["os.system", "builtins.eval", "subprocess.run"])
def test_configs_may_not_name_code_outside_the_project(target):
    with pytest.raises(ValueError, match="refusing to import it"):
        build_model({"_target_": target, "command": "touch /tmp/pwned"}, DataSpec())
    nested = {"_target_": "mpnn.models.mpnn.MPNN", "message": {"_target_": target, "_partial_": True}}
    with pytest.raises(ValueError, match=r"model.message._target_="):
        build_model(nested, DataSpec())


def test_a_class_that_is_not_a_molecule_model_is_refused():
    with pytest.raises(ValueError, match="is not a MoleculeModel"):
        build_model({"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}, DataSpec())
