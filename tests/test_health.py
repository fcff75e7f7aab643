"""Training-health monitors: each alarm fires on a deliberately broken run and stays silent on a healthy one.

Unit tests feed the callback the logged values (or gradients) of a run directly; the end-to-end ones
train tiny models through ``train.run`` with ``callbacks=default``, where the callback is configured.
"""

import csv
import shutil
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genlab import train
from genlab.callbacks.health import TrainingDiverged, TrainingHealth, class_coverage, mean_pairwise_distance
from genlab.checkpoint import load_model
from genlab.data.embedded import DigitsDataModule

QUIET = ["callbacks.sample_quality=null", "callbacks.image_preview=null"]
TINY_GAN = ["data.image_size=16", "data.batch_size=16", "model.generator.width=8", "model.discriminator.width=8"]


def alarms(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("training health")]


def logged(cfg, key: str) -> list[float]:
    """Every value of ``key`` in the run's metrics.csv, in order."""
    rows = csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open())
    return [float(row[key]) for row in rows if row.get(key)]


class FakeModule:
    """What the callback reads from a LightningModule: its hparams, and ``log``."""

    def __init__(self, probability: bool = True, real_label: float | None = None):
        d_loss = {} if real_label is None else {"real_label": real_label}
        self.hparams = {"loss": {"probability": probability, "d": d_loss}, "optimizer_d": {}}
        self.logged = defaultdict(list)

    def log(self, key, value, **kwargs):
        self.logged[key].append(float(value))


def fake_trainer(metrics: dict[str, float] | None = None, scaler=None) -> SimpleNamespace:
    """A trainer on a batch whose logs are written, with ``metrics`` logged so far."""
    return SimpleNamespace(
        callback_metrics={k: torch.tensor(float(v)) for k, v in (metrics or {}).items()},
        _logger_connector=SimpleNamespace(should_update_logs=True),
        fast_dev_run=False,
        global_step=100,
        current_epoch=0,
        sanity_checking=False,
        precision_plugin=SimpleNamespace(scaler=scaler),
        checkpoint_callbacks=[],
        loggers=[],
        is_global_zero=True,
    )


# --- the pieces ---------------------------------------------------------------------------------


def test_coverage_counts_classes_with_their_share_and_distance_is_euclidean():
    logits = torch.eye(3)[[0, 0, 0, 0, 0, 0, 0, 0, 1, 2]]  # 8 × class 0, one each of 1 and 2
    assert class_coverage(logits, min_share=0.1) == 3
    assert class_coverage(logits, min_share=0.2) == 1
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert mean_pairwise_distance(torch.ones(5, 4)) == 0.0


def test_an_alarm_fired_before_a_resume_does_not_fire_again():
    health = TrainingHealth(d_wins_patience=1)
    saturated = fake_trainer({"train/d_real": 0.9999, "train/d_fake": 0.0001})
    health.on_train_batch_end(saturated, FakeModule(), None, None, 0)
    resumed = TrainingHealth(d_wins_patience=1)
    resumed.load_state_dict(health.state_dict())
    assert resumed.alarms["d_wins"].fired
    assert not resumed.alarms["d_wins"].check(True)


# --- D winning ----------------------------------------------------------------------------------


def test_d_wins_after_patience_saturated_steps_in_a_row_and_warns_once(caplog):
    health, module = TrainingHealth(d_wins_patience=3), FakeModule()
    saturated = fake_trainer({"train/d_real": 0.9999, "train/d_fake": 0.0001})
    contested = fake_trainer({"train/d_real": 0.8, "train/d_fake": 0.2})
    for trainer in (saturated, saturated, contested, saturated, saturated):  # the contested step restarts the count
        health.on_train_batch_end(trainer, module, None, None, 0)
    assert module.logged["health/d_wins"] == [1, 1, 0, 1, 1]
    assert not alarms(caplog)
    for _ in range(3):
        health.on_train_batch_end(saturated, module, None, None, 0)
    assert len(alarms(caplog)) == 1 and "discriminator is winning outright" in alarms(caplog)[0]


def test_d_wins_under_label_smoothing_is_d_at_its_smoothed_target():
    """With real images labelled 0.9, a winning D answers about 0.9 on them (0.83-0.94 in the run below), never 0.998."""
    health, module = TrainingHealth(d_wins_patience=1), FakeModule(real_label=0.9)
    for d_real in (0.93, 0.85, 0.75):
        health.on_train_batch_end(fake_trainer({"train/d_real": d_real, "train/d_fake": 0.0001}), module, None, None, 0)
    assert module.logged["health/d_wins"] == [1, 1, 0]


def test_d_wins_is_off_when_d_outputs_are_not_probabilities(caplog):
    """Hinge / LSGAN / Wasserstein log raw outputs: 1 and 0 mean nothing there."""
    health, module = TrainingHealth(d_wins_patience=1), FakeModule(probability=False)
    health.on_train_batch_end(fake_trainer({"train/d_real": 0.9999, "train/d_fake": 0.0001}), module, None, None, 0)
    assert not module.logged and not alarms(caplog)


@pytest.mark.parametrize(
    "lr_d, loss, wins",
    [(2e-2, "nonsaturating", True), (2e-4, "nonsaturating", False), (2e-2, "nonsaturating_smooth", True)],
)
def test_a_d_with_100x_the_learning_rate_wins_outright(make_cfg, caplog, lr_d, loss, wins):
    cfg = make_cfg(
        *TINY_GAN,
        *QUIET,
        f"model/loss={loss}",
        "trainer.limit_train_batches=20",
        "model.optimizer_g.lr=2e-4",  # the paper's rate for G; D at 100x of it, or the same
        f"model.optimizer_d.lr={lr_d}",
        "callbacks.health.d_wins_patience=5",
    )
    train.run(cfg)
    assert any(logged(cfg, "health/d_wins")) == wins
    assert any("discriminator is winning" in m for m in alarms(caplog)) == wins
    assert logged(cfg, "health/grad_norm_generator") and logged(cfg, "health/grad_norm_discriminator")


# --- exploding gradients --------------------------------------------------------------------------


class Quadratic(L.LightningModule):
    """loss = sign · w², plain SGD: w doubles every step (sign −1, lr 0.5) or shrinks (sign +1, lr 0.1)."""

    def __init__(self, sign: float, lr: float):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.sign, self.lr = sign, lr

    def training_step(self, batch, batch_idx):
        return self.sign * (self.w**2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(40, 1)), batch_size=1)


@pytest.mark.parametrize("sign, lr, explodes", [(-1.0, 0.5, True), (1.0, 0.1, False)])
def test_a_doubling_gradient_norm_is_an_explosion(tmp_path, caplog, sign, lr, explodes):
    health = TrainingHealth()  # the configured defaults: 1000 × the median of the earlier logged norms
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        log_every_n_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[health],
    )
    trainer.fit(Quadratic(sign, lr))
    assert health.alarms["grad_explosion"].fired == explodes
    assert any("gradient explosion" in m for m in alarms(caplog)) == explodes
    assert float(trainer.callback_metrics["health/grad_norm"]) > 0


# --- non-finite gradients -------------------------------------------------------------------------


class HugeLearningRate(L.Callback):
    """From the second epoch every optimizer takes steps of 1e30; keeps a copy of last.ckpt as it was."""

    def __init__(self, checkpoints: Path):
        self.checkpoints = checkpoints

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            shutil.copy(self.checkpoints / "last.ckpt", self.checkpoints.parent / "good.ckpt")
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = 1e30


def test_a_huge_learning_rate_stops_the_run_and_keeps_the_last_good_checkpoint(make_cfg):
    cfg = make_cfg(*TINY_GAN, *QUIET, "trainer.max_epochs=2", "trainer.limit_train_batches=4")
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    with pytest.raises(TrainingDiverged, match="not finite") as error:
        train.run(cfg, callbacks=[HugeLearningRate(checkpoints)])
    assert str(checkpoints / "last.ckpt") in str(error.value) and "model.optimizer_d.lr" in str(error.value)
    # Lightning's save-on-exception did not write the diverged state over the epoch-1 checkpoint.
    assert (checkpoints / "last.ckpt").read_bytes() == (checkpoints.parent / "good.ckpt").read_bytes()
    model = load_model(checkpoints / "last.ckpt")
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    assert torch.isfinite(model.sample(4)).all()
    assert logged(cfg, "health/nonfinite") == [1.0]


def nan_step(health: TrainingHealth, trainer) -> None:
    weight = nn.Parameter(torch.zeros(2))
    weight.grad = torch.tensor([float("nan"), 1.0])
    health.on_before_optimizer_step(trainer, FakeModule(), torch.optim.SGD([weight], lr=0.1))


def test_under_a_grad_scaler_only_a_run_of_non_finite_steps_stops_training():
    """16-mixed: the scaler skips overflowing steps (and lowers its scale); that is no divergence."""
    health = TrainingHealth(scaler_patience=3)
    scaled = fake_trainer(scaler=object())
    nan_step(health, scaled)
    nan_step(health, scaled)
    with pytest.raises(TrainingDiverged):
        nan_step(health, scaled)
    with pytest.raises(TrainingDiverged):  # without a scaler the first one stops the run
        nan_step(TrainingHealth(scaler_patience=3), fake_trainer())


# --- mode collapse ------------------------------------------------------------------------------


class Replay(L.LightningModule):
    """A stand-in generator: ``sample`` draws training digits by the given noise until epoch
    ``collapse_at``; from then on it collapses to ``collapse`` (``constant``: one image whatever the
    noise; ``one_class``: varied images of a single digit)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, collapse: str | None, collapse_at: int = 1):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.images, self.labels, self.collapse, self.collapse_at = images, labels, collapse, collapse_at

    def training_step(self, batch, batch_idx):
        return (self.w - 1) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        pool = torch.arange(len(self.images))
        if self.collapse and self.current_epoch >= self.collapse_at:
            pool = pool[:1] if self.collapse == "constant" else pool[self.labels == 1]
        return self.images[pool[torch.randint(len(pool), (n,), generator=generator)]]


@pytest.mark.parametrize(
    "collapse, collapse_at, expected",
    [
        (None, 0, set()),
        ("constant", 1, {"mode_collapse", "near_duplicates"}),
        ("one_class", 1, {"mode_collapse"}),
        # Never varied (an untrained G draws one texture whatever z): no fall, no alarm.
        ("constant", 0, set()),
    ],
)
def test_a_generator_that_collapses_sets_off_the_sample_alarms(tmp_path, caplog, collapse, collapse_at, expected):
    data = DigitsDataModule(image_size=16, batch_size=64)
    data.setup("fit")
    images, labels = data.train_set.tensors
    health = TrainingHealth(max_overhead=None)  # a check every epoch; else the defaults: two bad checks in a row
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[health],
    )
    trainer.fit(Replay(images, labels, collapse, collapse_at), datamodule=data)
    assert {kind for kind, alarm in health.alarms.items() if alarm.fired} == expected
    assert len(alarms(caplog)) == len(expected)
    assert health.best_coverage == (1 if collapse_at == 0 and collapse else 10)  # healthy epochs: every digit


# --- posterior and codebook collapse --------------------------------------------------------------


@pytest.mark.parametrize("beta, collapses", [(100.0, True), (1.0, False)])
def test_a_vae_with_beta_100_collapses_its_posterior(make_cfg, caplog, beta, collapses):
    cfg = make_cfg(
        *QUIET,
        "model=vae",
        "data.image_size=16",
        "data.batch_size=32",
        "model.encoder.width=16",
        "model.decoder.width=16",
        "model.latent_dim=8",
        "model.optimizer.lr=3e-3",
        f"model.beta={beta}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=8",
        "trainer.limit_val_batches=2",
        "callbacks.health.n_samples=0",
    )
    train.run(cfg)
    assert logged(cfg, "health/posterior_collapse") == ([1.0, 1.0] if collapses else [0.0, 0.0])
    assert any("posterior collapse" in m for m in alarms(caplog)) == collapses


class OneUsableCode(L.Callback):
    """Moves every code but the first far from any encoder output: the quantiser can use one code."""

    def on_fit_start(self, trainer, pl_module):
        with torch.no_grad():
            pl_module.quantizer.codebook[1:] = 1e3


@pytest.mark.parametrize("broken", [True, False])
def test_a_codebook_reduced_to_one_code_is_a_codebook_collapse(make_cfg, caplog, broken):
    """Broken: one reachable code and dead-code restarts off; healthy: the default quantiser."""
    cfg = make_cfg(
        *QUIET,
        "model=vqvae",
        "data.batch_size=16",
        "model.encoder.hidden=16",
        "model.encoder.residual_hidden=8",
        "model.quantizer.num_codes=16",
        "model.quantizer.code_dim=8",
        f"model.quantizer.restart_threshold={0 if broken else 1}",
        "trainer.max_epochs=2",
        "trainer.limit_val_batches=2",
    )
    train.run(cfg, callbacks=[OneUsableCode()] if broken else [])
    assert logged(cfg, "health/codebook_collapse") == ([1.0, 1.0] if broken else [0.0, 0.0])
    assert any("codebook collapse" in m for m in alarms(caplog)) == broken


def test_codebook_usage_falling_to_a_quarter_of_its_best_is_a_collapse(caplog):
    health, module = TrainingHealth(), FakeModule()
    for perplexity in (20.0, 40.0, 35.0, 9.0, 8.0):  # 9 < 0.25 × 40 twice in a row
        trainer = fake_trainer({"val/perplexity": perplexity, "val/code_usage": perplexity / 64})
        health.on_validation_end(trainer, module)
        health.on_train_epoch_end(trainer, module)
    assert module.logged["health/codebook_collapse"] == [0, 0, 0, 1, 1]
    assert len(alarms(caplog)) == 1 and "val/perplexity = 8.00" in alarms(caplog)[0]


def test_sample_checks_take_at_most_their_share_of_the_training_time():
    health = TrainingHealth(max_overhead=0.02)
    health._extractor = ScriptedClassifier([])
    health._started = time.monotonic() - 100.0  # 100 s of training: 2 s of checks allowed
    health._check_seconds = 1.5
    assert health.samples_due(epoch=5)
    health._check_seconds = 2.5
    assert not health.samples_due(epoch=5)
    every_other = TrainingHealth(max_overhead=None, every_n_epochs=2)
    every_other._extractor = ScriptedClassifier([])
    assert every_other.samples_due(epoch=4) and not every_other.samples_due(epoch=5)


class ScriptedClassifier:
    """Labels the i-th batch of samples by ``labels[i]`` (one class per sample), features all distinct."""

    def __init__(self, labels: list[list[int]]):
        self.labels = iter(labels)

    def __call__(self, images):
        labels = torch.tensor(next(self.labels))
        return {"logits": torch.eye(10)[labels], "features": torch.randn(len(labels), 4)}


@pytest.mark.parametrize(
    "covered, collapses",
    [
        ([10, 4, 4], True),  # half of a full coverage lost, two checks in a row
        ([3, 1, 1], False),  # early wandering: the samples never covered half the digits
        ([10, 6, 4], False),  # one bad check is no trend
    ],
)
def test_mode_collapse_is_a_fall_from_a_coverage_the_run_once_had(caplog, covered, collapses):
    health, module = TrainingHealth(n_samples=50), FakeModule()
    module.device, module.sample = torch.device("cpu"), lambda n, generator: torch.zeros(n, 1, 8, 8)
    health._extractor = ScriptedClassifier([[i % k for i in range(50)] for k in covered])
    health._real_distance, health._real_coverage = 1.0, 10
    for _ in covered:
        health.on_train_epoch_end(fake_trainer(), module)
    assert module.logged["health/class_coverage"] == covered
    assert health.alarms["mode_collapse"].fired == collapses
    assert any("mode collapse" in m for m in alarms(caplog)) == collapses
