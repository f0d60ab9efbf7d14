"""trainer.precision=bf16-mixed: autocast reaches every step, hot products run in bf16, the rest in float32."""

import lightning as L
import pytest
import torch

from mpnn.training.build import build
from tests.training.test_module import compose_config


def _loss_and_gradients(module, batch, device_type: str, bf16: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    module.zero_grad()
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        loss, prediction = module.loss(batch)
    loss.backward()
    return loss.detach(), prediction.detach(), torch.cat([p.grad.flatten() for p in module.parameters()])


@pytest.mark.parametrize("backend", ["dense", "pyg"])
def test_bf16_agrees_with_float32_on_real_batches(backend, briefly_trained, device="cpu"):
    """Same weights, same 256 real molecules: loss, predictions and gradients agree to bf16 precision,
    yet differ (the bf16 path really ran). Predictions are of the standardised target (spread 1)."""
    datamodule, module = build(compose_config("data.subset=1000", f"backend={backend}"))
    module.load_state_dict(briefly_trained)
    module = module.to(device)
    batch = datamodule.batch(datamodule.split.val[:256], device)
    loss32, prediction32, gradient32 = _loss_and_gradients(module, batch, device, bf16=False)
    loss16, prediction16, gradient16 = _loss_and_gradients(module, batch, device, bf16=True)
    assert prediction16.dtype == loss16.dtype == torch.float32  # prediction and loss in float32 islands
    assert 0 < (prediction16 - prediction32).abs().max() < 0.005
    assert loss16.item() == pytest.approx(loss32.item(), rel=0.005)
    assert torch.nn.functional.cosine_similarity(gradient16, gradient32, 0) > 0.999
    assert (gradient16 - gradient32).norm() < 0.05 * gradient32.norm()


def test_hot_products_run_in_bf16_and_states_in_float32(packed):
    datamodule, module = build(compose_config("data.subset=300"))
    batch = datamodule.batch(datamodule.split.train[:32])
    model = module.model
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = model.embed(batch.x) * batch.mask.unsqueeze(-1)
        message = model.messages[0].step(h, model.messages[0].prepare(model.edges(batch)))
        state = model.updates[0](h, message)
    assert message.dtype == torch.bfloat16  # the edge network's products: where the time goes
    assert state.dtype == torch.float32  # the GRU state is not rounded to 8 bits at every step


class AutocastProbe(L.Callback):
    """Records, on every forward of the model, whether autocast was on and in which dtype."""

    def __init__(self):
        self.seen: dict[str, set] = {"train": set(), "eval": set()}

    def setup(self, trainer, module, stage) -> None:
        forward = module.model.forward

        def probed(batch):
            stage = "train" if module.training else "eval"
            self.seen[stage].add((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return forward(batch)

        module.model.forward = probed


def test_lightning_runs_training_validation_and_test_under_autocast(packed):
    """The module optimises manually; Lightning's precision plugin must still wrap each step in autocast."""
    datamodule, module = build(compose_config("data.subset=300", "data.batch_size=64", "data.batch_parts=4"))
    probe = AutocastProbe()
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed", max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[probe],
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    assert probe.seen == {"train": {(True, torch.bfloat16)}, "eval": {(True, torch.bfloat16)}}
    assert trainer.global_step == len(datamodule.train_dataloader())
    assert torch.isfinite(trainer.callback_metrics["test/mae"])
    assert all(p.dtype == torch.float32 for p in module.parameters())


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_half_precision_weights_are_refused(precision, packed):
    datamodule, module = build(compose_config("data.subset=300"))
    trainer = L.Trainer(accelerator="cpu", precision=precision, max_epochs=1, logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="use bf16-mixed"):
        trainer.fit(module, datamodule=datamodule)
