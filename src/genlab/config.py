"""Compose the repository's Hydra configs from Python (tests, benchmarks, notebooks)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict


def config_dir() -> Path:
    """``$GENLAB_CONF`` or the ``conf/`` folder of the checkout genlab is installed from."""
    path = Path(os.environ.get("GENLAB_CONF", Path(__file__).resolve().parents[2] / "conf"))
    if not (path / "train.yaml").is_file():
        raise FileNotFoundError(f"no Hydra configs at {path}; set GENLAB_CONF to the repository's conf/ folder")
    return path


def compose_train(overrides: list[str] | None = None, output_dir: str | os.PathLike | None = None) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``python train.py *overrides`` would see it.

    Outside a Hydra run the ``hydra:`` resolvers are undefined, so the paths are pinned here:
    ``output_dir`` (default: a fresh temporary directory) and the repository root.
    """
    import tempfile

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.paths.root_dir = str(config_dir().parent)
        cfg.paths.output_dir = str(output_dir or tempfile.mkdtemp(prefix="genlab-"))
    return cfg


def compose_evaluate(overrides: list[str] | None = None) -> DictConfig:
    """``conf/evaluate.yaml`` with ``overrides``, as ``python evaluate.py *overrides`` would see it."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides or []))
