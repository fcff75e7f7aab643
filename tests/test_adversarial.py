"""The adversarial base: EMA, counters that never reset, R1, gradient clipping, the logging gate."""

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from genlab import train
from genlab.errors import ConfigError
from genlab.logs import writes_this_step
from genlab.models.ema import EMA

TINY = ["data.batch_size=8", "model.generator.width=8", "model.discriminator.width=8"]


def test_ema_with_decay_zero_copies_the_module():
    module = nn.Linear(3, 2)
    ema = EMA(module, decay=0.0)
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update(module)
    assert torch.equal(ema.average.weight, module.weight)


def test_ema_moves_a_fraction_one_minus_beta_towards_the_module():
    module = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(module.weight)
    ema = EMA(module, decay=0.9)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)
    assert ema.average.weight.item() == pytest.approx(0.1)  # 0.9 · 0 + 0.1 · 1
    ema.update(module)
    assert ema.average.weight.item() == pytest.approx(0.19)


def test_ema_half_life_in_images_and_ramp_up():
    module = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(module.weight)
    ema = EMA(module, ema_kimg=0.064)  # half-life 64 images
    with torch.no_grad():
        module.weight.fill_(1.0)
    for step in range(4):  # 4 batches of 16 = one half-life: the old weight 0 keeps half its say
        ema.update(module, batch_size=16, images_seen=16 * step)
    assert ema.average.weight.item() == pytest.approx(0.5)
    ramped = EMA(module, ema_kimg=10.0, ramp=0.5)
    # 100 images seen: half-life min(10 000, 50) images, so one batch of 50 halves the old weight.
    assert ramped.beta(batch_size=50, images_seen=100) == pytest.approx(0.5)
    assert ramped.beta(batch_size=50, images_seen=10**6) == pytest.approx(0.5 ** (50 / 10_000))


def test_ema_is_saved_and_restored_with_the_model(make_cfg):
    cfg = make_cfg(*TINY, "model.ema_kimg=0.01", "model.ema_rampup=0.05")
    train.run(cfg)
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    keys = [k for k in saved["state_dict"] if k.startswith("generator_ema.average.")]
    assert keys and int(saved["state_dict"]["images_seen"]) == 2 * 8
    ema = {k: saved["state_dict"][k] for k in keys}
    raw = {k: saved["state_dict"][k.replace("generator_ema.average.", "generator.")] for k in keys}
    assert any(not torch.equal(ema[k], raw[k]) for k in keys if ema[k].is_floating_point())


def test_n_critic_counts_batches_over_the_whole_run(make_cfg):
    """n_critic = 3 with 2 batches an epoch: G steps after batches 3 and 6 of the run. Counting
    batch_idx (which restarts each epoch) would never reach 3."""
    cfg = make_cfg(*TINY, "model.n_critic=3", "trainer.max_epochs=3")
    train.run(cfg)
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 6 + 2  # 6 D steps and 2 G steps
    assert int(saved["state_dict"]["batches_seen"]) == 6


class LearningRates(L.Callback):
    def __init__(self):
        self.lrs: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.lrs.append(tuple(opt.param_groups[0]["lr"] for opt in trainer.optimizers))


def test_lr_decay_epochs_hold_then_take_both_lrs_linearly_to_zero(make_cfg):
    """5 epochs, the last 3 decaying: 1, 1, then 3/4, 2/4, 1/4 of the LR at the epochs' starts, 0 at the end."""
    lrs = LearningRates()
    cfg = make_cfg(*TINY, "trainer.max_epochs=5", "model.lr_decay_epochs=3")
    train.run(cfg, callbacks=[lrs])
    factors = (1, 1, 3 / 4, 2 / 4, 1 / 4)
    assert [g for g, _ in lrs.lrs] == pytest.approx([cfg.model.optimizer_g.lr * f for f in factors])
    assert [d for _, d in lrs.lrs] == pytest.approx([cfg.model.optimizer_d.lr * f for f in factors])
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert [opt["param_groups"][0]["lr"] for opt in saved["optimizer_states"]] == [0, 0]


def test_lr_decay_needs_a_known_number_of_epochs(make_cfg):
    cfg = make_cfg(*TINY, "trainer.max_epochs=2", "model.lr_decay_epochs=3")
    with pytest.raises(ConfigError, match="model.lr_decay_epochs=3 counts back from trainer.max_epochs=2"):
        train.run(cfg)


class AtTrainStart(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.weights = {k: v.clone() for k, v in pl_module.discriminator.state_dict().items()}


def one_step(make_cfg, tmp_path, *overrides) -> tuple[dict, dict]:
    """D's weights (start, after one batch) of a tiny DCGAN run."""
    cfg = make_cfg(*TINY, "trainer.limit_train_batches=1", *overrides)
    cfg.paths.output_dir = str(tmp_path / "_".join(o.split("=")[-1] for o in overrides))
    start = AtTrainStart()
    train.run(cfg, callbacks=[start])
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    end = {
        k.removeprefix("discriminator."): v for k, v in saved["state_dict"].items() if k.startswith("discriminator.")
    }
    return start.weights, end


def test_r1_changes_the_discriminator_step(make_cfg, tmp_path):
    _, plain = one_step(make_cfg, tmp_path, "model.r1_gamma=0")
    _, r1 = one_step(make_cfg, tmp_path, "model.r1_gamma=10")
    assert any(not torch.allclose(plain[k], r1[k]) for k in plain if plain[k].is_floating_point())


def test_grad_clip_bounds_each_update(make_cfg, tmp_path):
    """SGD with lr 1 moves the weights by exactly the (clipped) gradient: its norm is at most grad_clip."""
    sgd = ["model.optimizer_d._target_=torch.optim.SGD", "~model.optimizer_d.betas", "model.optimizer_d.lr=1.0"]
    sgd += ["model.discriminator.batch_norm=false"]  # no running statistics among the moved tensors

    def moved(start, end):
        return torch.sqrt(sum((end[k] - start[k]).pow(2).sum() for k in start if start[k].is_floating_point()))

    assert moved(*one_step(make_cfg, tmp_path, *sgd, "model.grad_clip=null")) > 0.01
    assert moved(*one_step(make_cfg, tmp_path, *sgd, "model.grad_clip=0.001")) <= 0.001 * 1.001


def test_lightning_still_has_the_logging_gate():
    """genlab.logs reads Lightning's private should_update_logs; if an upgrade drops it, logging falls
    back to every batch (correct, ~6% slower). Fail loudly here so that someone looks."""
    seen = []

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            seen.append((trainer._logger_connector.should_update_logs, writes_this_step(trainer)))

    from lightning.pytorch.demos.boring_classes import BoringModel

    model = BoringModel()
    trainer = L.Trainer(
        max_steps=4, log_every_n_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    trainer.callbacks.append(Probe())
    trainer.fit(model)
    assert [s for s, _ in seen] == [False, True, False, True]
    assert all(s == w for s, w in seen)
