from __future__ import annotations

import functools
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from genlab.config import compose_train

ROOT = Path(__file__).resolve().parents[1]

# Tests run offline and small: one thread per op keeps two pytest workers (or a helper) from
# thrashing a 2-core machine, and turns off anything that would try the network.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Converted Inception weights and real-image features go to a throwaway cache, not ~/.cache/genlab.
os.environ.setdefault("GENLAB_CACHE", tempfile.mkdtemp(prefix="genlab-cache-"))
# W&B's staged artifacts (checkpoints, tables), its cache and settings: the same, not ~/.local/share/wandb.
_WANDB_HOME = tempfile.mkdtemp(prefix="genlab-wandb-")
for _name, _sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
    os.environ.setdefault(_name, os.path.join(_WANDB_HOME, _sub))
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
if os.environ.get("PYTEST_XDIST_WORKER"):  # make test's two workers on two cores: one thread each, scripts included
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)

# What every test run overrides: CPU, no rich progress bar, tiny epochs.
FAST = [
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "callbacks.progress_bar=null",
    "callbacks.lr_monitor=null",
]


@functools.cache
def online(host: str = "github.com") -> bool:
    """Whether ``host`` (where torch-fidelity's weights live) answers on HTTPS within a few seconds."""
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("network") and not online():
        pytest.skip("needs the network (github.com unreachable)")


@pytest.fixture
def make_cfg(tmp_path):
    """compose_train(overrides) with FAST settings and the run directory in tmp_path."""

    def make(*overrides: str, fast: bool = True):
        return compose_train([*(FAST if fast else []), *overrides], output_dir=tmp_path / "run")

    return make


def run_script(script: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None):
    """Run one of the repository's entry points as a user would, in ``cwd``."""
    import subprocess

    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


@pytest.fixture(scope="session")
def vqvae_ckpt(tmp_path_factory) -> Path:
    """A small VQ-VAE trained for 2 steps on digits: what ``model=vqvae_prior`` needs to start."""
    from genlab import train

    out = tmp_path_factory.mktemp("vqvae")
    overrides = [
        *FAST,
        "model=vqvae",
        "data.batch_size=8",
        "model.encoder.hidden=16",
        "model.encoder.residual_hidden=8",
    ]
    train.run(compose_train(overrides, output_dir=out))
    return out / "checkpoints" / "last.ckpt"


def train_ddp_on_cpu(tmp_path: Path, *overrides: str, batches: int) -> dict:
    """``python train.py trainer=ddp`` with 2 CPU processes for ``batches`` batches each; returns the
    saved last.ckpt."""
    result = run_script(
        "train.py",
        f"hydra.run.dir={tmp_path}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        f"+trainer.limit_train_batches={batches}",
        "callbacks.progress_bar=null",
        *overrides,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
