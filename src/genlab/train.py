"""What ``python train.py`` does: compose data, model, trainer, loggers and callbacks, then fit."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.fabric.utilities.warnings import PossibleUserWarning
from omegaconf import DictConfig, OmegaConf, open_dict

from genlab.callbacks import ImagesSeen, SampleQuality
from genlab.checkpoint import AtomicCheckpointIO, RecordRun, read_checkpoint
from genlab.config import config_dir
from genlab.errors import ConfigError, MissingFile, UserError
from genlab.loggers import WandbLogger
from genlab.metrics import keys

log = logging.getLogger("genlab")


def check_config(cfg: DictConfig) -> None:
    """Fail on a bad config before any data is read or model built."""
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise MissingFile(
            f"ckpt_path={cfg.ckpt_path} does not exist; pass a checkpoint file, e.g. <run>/checkpoints/last.ckpt"
        )
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ConfigError(
            f"these config keys need a value: {', '.join(sorted(missing))} (e.g. python train.py {sorted(missing)[0]}=...)"
        )
    for name, logger in (cfg.get("logger") or {}).items():
        online_wandb = "WandbLogger" in str(logger.get("_target_", "")) and not logger.get("offline", True)
        if online_wandb and not os.environ.get("WANDB_API_KEY"):
            warnings.warn(
                f"logger.{name}: online W&B asked for but WANDB_API_KEY is unset; logging offline "
                "(sync later with `wandb sync`)",
                stacklevel=2,
            )
            with open_dict(cfg):
                logger.offline = True
    check_batches(cfg)


def batches_of(node: DictConfig) -> str:
    """What a model consumes or a datamodule gives, from the class its config names: ``images``
    (image, label) batches, ``domains`` (two unpaired domains), ``degraded`` (clean/degraded pairs)."""
    if node.get("degradation"):
        return "degraded"
    return getattr(get_class(node._target_), "batches", "images")


def check_batches(cfg: DictConfig) -> None:
    """The data must give what the model consumes; found out here, not as a KeyError in training_step."""
    wants, gives = batches_of(cfg.model), batches_of(cfg.data)
    if wants == gives:
        return
    fit = []
    for path in sorted((config_dir() / "data").glob("*.yaml")):
        node = OmegaConf.load(path)
        if "_target_" in node and getattr(get_class(node._target_), "batches", "images") == wants:
            fit.append(path.stem)
    words = {"images": "single images", "domains": "two unpaired domains", "degraded": "degraded/clean pairs"}
    hint = f"data options that fit: {', '.join(fit)}" if fit else "add a degradation: degradation=noise|inpaint_box|..."
    raise ConfigError(
        f"model ({cfg.model._target_}) trains on {words[wants]} but the data ({cfg.data._target_}) gives "
        f"{words[gives]}; {hint}"
    )


def check_resume(cfg: DictConfig) -> None:
    """Resuming a run that already reached trainer.max_epochs would do nothing; say so instead."""
    saved = read_checkpoint(cfg.ckpt_path)
    # Lightning saves at an epoch's end after counting it processed and before counting it completed.
    progress = saved.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("total", {})
    done = progress.get("processed", saved.get("epoch", -1) + 1)
    max_epochs = cfg.trainer.get("max_epochs")
    if max_epochs not in (None, -1) and done >= max_epochs:
        raise UserError(
            f"ckpt_path={cfg.ckpt_path}: that run already ended after epoch {done} and trainer.max_epochs={max_epochs}; "
            f"to train on, resume with trainer.max_epochs={done + max(1, max_epochs)} (or any number > {done})"
        )


def build_node(node: DictConfig, key: str, **kwargs):
    """``instantiate`` whose error is the root cause (e.g. a bad ``data.image_size``), not Hydra's
    nest of wrapped exceptions."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ConfigError(f"{key} ({node.get('_target_')}): {cause}") from err


@contextmanager
def quiet_known_warnings():
    """Inside: Lightning's advice that does not apply to genlab's runs is not shown; every other
    warning is, and the filters end with the run."""
    with warnings.catch_warnings():
        # In-memory datasets need no worker processes.
        warnings.filterwarnings("ignore", r".*does not have many workers.*", PossibleUserWarning)
        # Generators need no validation_step; previews and metrics callbacks still use the val set.
        warnings.filterwarnings("ignore", r".*`val_dataloader` but have no `validation_step`.*", UserWarning)
        # Frozen stages (the VQ-VAE under its prior, EMA copies) stay in eval mode on purpose.
        warnings.filterwarnings("ignore", r".*module\(s\) in eval mode at the start of training.*", PossibleUserWarning)
        # Lightning's own use of a torch API torch deprecated; not ours to act on.
        warnings.filterwarnings("ignore", r".*isinstance\(treespec, LeafSpec\)` is deprecated.*", module="lightning")
        yield


def build(
    cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None, **trainer_overrides
) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Data, model and the Trainer with train.py's callbacks, loggers and checkpoint IO (benchmarks
    time exactly this); ``trainer_overrides`` replace keys of ``cfg.trainer``."""
    datamodule: L.LightningDataModule = build_node(cfg.data, "data")
    model: L.LightningModule = build_node(cfg.model, "model", _recursive_=False, _convert_="all")
    run_config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += [ImagesSeen(), RecordRun(run_config), *(extra_callbacks or [])]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.record_config(run_config)
    if cfg.trainer.get("strategy") == "ddp" and getattr(model, "has_frozen_players", False):
        # Each player's update leaves the frozen players' weights out of the graph, which plain DDP
        # takes for a bug; families without frozen players keep plain (faster) DDP.
        trainer_overrides.setdefault("strategy", "ddp_find_unused_parameters_true")
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **trainer_overrides
    )
    return datamodule, model, trainer


def run(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> float | None:
    """Train (with ``callbacks`` besides the configured ones); returns ``cfg.optimized_metric``'s
    final value (for sweeps) when one is set."""
    check_config(cfg)
    if cfg.get("ckpt_path"):
        check_resume(cfg)
    with quiet_known_warnings():
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model, trainer = build(cfg, callbacks)
        if trainer.is_global_zero:
            Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
            OmegaConf.save(cfg, Path(cfg.paths.output_dir) / "config.yaml", resolve=True)

        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    if trainer.is_global_zero:
        summarise(trainer, Path(cfg.paths.output_dir))
    return optimized_value(cfg.get("optimized_metric"), trainer)


def optimized_value(metric: str | None, trainer: L.Trainer) -> float | None:
    """The last value of ``optimized_metric``: a logged key, or a sample-quality statistic by its
    name alone (``fid``, ``kid``, ``is``, ...), which means the key the run's SampleQuality logged."""
    if not metric:
        return None
    if metric not in trainer.callback_metrics:
        scorer = next((c for c in trainer.callbacks if isinstance(c, SampleQuality)), None)
        metric = (scorer.key(metric) if scorer is not None else None) or metric
    if metric not in trainer.callback_metrics:
        raise ConfigError(f"optimized_metric={metric} was never logged; logged: {sorted(trainer.callback_metrics)}")
    return float(trainer.callback_metrics[metric])


def summarise(trainer: L.Trainer, output_dir: Path) -> None:
    """Tell the user where everything went."""
    lines = [f"run directory   {output_dir}"]
    samples = sorted((output_dir / "samples").glob("*final.png"))
    if samples:
        lines.append(f"samples         {', '.join(str(s) for s in samples)}")
    if trainer.checkpoint_callback is not None and (output_dir / "checkpoints" / "last.ckpt").exists():
        lines.append(f"last checkpoint {output_dir / 'checkpoints' / 'last.ckpt'}")
    for logger in trainer.loggers:
        lines.append(f"{type(logger).__name__:<15} {logger.log_dir or logger.save_dir}")
    shown = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    quality = {k: v for k, v in shown.items() if keys.is_sample_key(k)}
    if shown.keys() - quality.keys():
        lines.append(
            "final metrics   " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()) if k not in quality)
        )
    if quality:
        lines.append("sample quality  " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(quality.items())))
    print("\n".join(lines))
