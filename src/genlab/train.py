"""What ``python train.py`` does: compose data, model, trainer, loggers and callbacks, then fit."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from genlab.callbacks import ImagesSeen
from genlab.checkpoint import AtomicCheckpointIO, RecordRun

log = logging.getLogger("genlab")


def check_config(cfg: DictConfig) -> None:
    """Fail on a bad config before any data is read or model built."""
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(
            f"ckpt_path={cfg.ckpt_path} does not exist; pass a checkpoint file, e.g. <run>/checkpoints/last.ckpt"
        )
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        raise ValueError(
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


class ConfigError(ValueError):
    """A config that cannot be built; the message names the config group and the root cause."""


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


def quiet_known_warnings() -> None:
    # In-memory datasets need no worker processes; Lightning's advice to add some is noise here.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # Generators need no validation_step; previews and metrics callbacks still use the val set.
    warnings.filterwarnings("ignore", message=r".*`val_dataloader` but have no `validation_step`.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Frozen stages (the VQ-VAE under its prior) stay in eval mode on purpose during training.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")


def build(
    cfg: DictConfig, extra_callbacks: list[L.Callback] | None = None, **trainer_overrides
) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Data, model and the Trainer with train.py's callbacks, loggers and checkpoint IO (benchmarks
    time exactly this); ``trainer_overrides`` replace keys of ``cfg.trainer``."""
    datamodule: L.LightningDataModule = build_node(cfg.data, "data")
    model: L.LightningModule = build_node(cfg.model, "model", _recursive_=False, _convert_="all")
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += [ImagesSeen(), RecordRun(OmegaConf.to_container(cfg, resolve=True)), *(extra_callbacks or [])]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()], **trainer_overrides
    )
    return datamodule, model, trainer


def run(cfg: DictConfig) -> float | None:
    """Train; returns ``cfg.optimized_metric``'s final value (for sweeps) when one is set."""
    check_config(cfg)
    quiet_known_warnings()
    L.seed_everything(cfg.seed, workers=True)

    datamodule, model, trainer = build(cfg)
    if trainer.is_global_zero:
        Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, Path(cfg.paths.output_dir) / "config.yaml", resolve=True)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))

    if trainer.is_global_zero:
        summarise(trainer, Path(cfg.paths.output_dir))
    metric = cfg.get("optimized_metric")
    if metric:
        if metric not in trainer.callback_metrics:
            raise KeyError(f"optimized_metric={metric} was never logged; logged: {sorted(trainer.callback_metrics)}")
        return float(trainer.callback_metrics[metric])
    return None


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
    quality = {k: v for k, v in shown.items() if k.startswith("val/") and "[" in k}  # SampleQuality's keys
    if shown.keys() - quality.keys():
        lines.append(
            "final metrics   " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()) if k not in quality)
        )
    if quality:
        lines.append("sample quality  " + "  ".join(f"{k}={v:.4g}" for k, v in sorted(quality.items())))
    print("\n".join(lines))
