import pytest
import torch

from mpnn.models.scaler import TargetScaler


def test_round_trip_and_checkpoint_state():
    scaler = TargetScaler()
    scaler.fit(-11000.5, 1234.25)  # large energies stay exact: the buffers are float64
    y = torch.tensor([-11000.5 + 0.001, -9000.0], dtype=torch.float64)
    torch.testing.assert_close(scaler.denormalise(scaler.normalise(y)), y, rtol=0, atol=1e-3)
    restored = TargetScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.mean.item() == -11000.5 and restored.std.item() == 1234.25


def test_zero_spread_is_rejected():
    with pytest.raises(ValueError, match="must be positive"):
        TargetScaler().fit(1.0, 0.0)
