"""Beyond one machine: Lightning DDP under SLURM, and the hydra/launcher presets (slurm, slurm_local,
parallel) that run a sweep's trials as cluster jobs or side by side, composed with an Optuna sweep."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning_utilities.core.rank_zero import rank_zero_only
from omegaconf import OmegaConf

from genlab.checkpoint import CONFIG_KEY
from genlab.config import config_dir
from tests.conftest import run_script
from tests.wandb_offline import offline_runs

# What srun exports to the 4th of 4 tasks of `sbatch --nodes=2 --ntasks-per-node=2` (second task of the
# second node), the variables Lightning's SLURMEnvironment reads.
SLURM_TASK_3_OF_4 = {
    "SLURM_NTASKS": "4",
    "SLURM_NTASKS_PER_NODE": "2",
    "SLURM_NNODES": "2",
    "SLURM_PROCID": "3",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_NODELIST": "gpu[07-08]",
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NAME": "genlab",
}


@pytest.fixture
def slurm_task(monkeypatch):
    """The SLURM variables of one srun task; Lightning's rank and MASTER_* side effects undone afterwards."""
    for name, value in SLURM_TASK_3_OF_4.items():
        monkeypatch.setenv(name, value)
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # set, then removed: the undo removes what Lightning writes
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)  # the Trainer sets it to the global rank
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # or the launcher would set torch's threads for the whole process


def test_ddp_preset_joins_the_slurm_job_as_its_task(slurm_task, make_cfg):
    """trainer=ddp num_nodes=2 devices=2 inside an srun task: Lightning takes world size and ranks from SLURM
    and launches nothing itself (srun started the 4 processes)."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from genlab import train

    cfg = make_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.num_nodes=2", "trainer.devices=2")
    _, _, trainer = train.build(cfg)
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment)
    assert environment.creates_processes_externally
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (4, 3, 1, 1)
    assert not trainer.is_global_zero
    # Every task finds rank 0 on the first node of the allocation, on a port derived from the job id.
    assert (environment.main_address, environment.main_port) == ("gpu07", 15000 + 4242)
    # What trainer.fit hands its work to: run here, in this task, with no child processes.
    assert trainer.strategy.launcher.launch(os.getpid, trainer=trainer) == os.getpid()
    assert not trainer.strategy.launcher.procs


def test_ddp_preset_with_the_wrong_device_count_fails_before_training(slurm_task, make_cfg):
    from genlab import train

    cfg = make_cfg("trainer=ddp", "trainer.accelerator=cpu", "trainer.num_nodes=2", "trainer.devices=4")
    _, _, trainer = train.build(cfg)
    with pytest.raises(ValueError, match="ntasks-per-node=2"):  # Lightning's message: set devices=2
        trainer.strategy.launcher.launch(os.getpid, trainer=trainer)


def compose_sweep(sweep_dir: Path, *overrides: str):
    """conf/train.yaml with the Hydra node, as ``python train.py -m hparams_search=dcgan_optuna ...`` sees it
    (the sweep folder pinned: outside a run Hydra's ``${hydra:runtime.cwd}`` has no value)."""
    overrides = ["hparams_search=dcgan_optuna", f"hydra.sweep.dir={sweep_dir}", *overrides]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


LAUNCHERS = {
    "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "slurm_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "parallel": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
}


def test_every_launcher_preset_is_tested_below():
    assert sorted(LAUNCHERS) == sorted(p.stem for p in (config_dir() / "hydra" / "launcher").glob("*.yaml"))


@pytest.mark.parametrize("preset", sorted(LAUNCHERS))
def test_launcher_presets_compose_with_the_optuna_sweep(preset, tmp_path):
    pytest.importorskip(LAUNCHERS[preset].rsplit(".", 2)[0])
    cfg = compose_sweep(tmp_path, f"hydra/launcher={preset}")
    assert cfg.hydra.launcher._target_ == LAUNCHERS[preset]
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.params["model.optimizer_g.lr"] == "interval(5e-5, 1e-3)"  # the search is untouched
    if preset == "parallel":
        assert cfg.hydra.launcher.n_jobs == 2
    else:
        assert (cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.tasks_per_node) == (1, 1)
    # The launcher class takes every key of the preset.
    assert type(instantiate(cfg.hydra.launcher)).__name__ == LAUNCHERS[preset].rsplit(".", 1)[1]


def test_slurm_preset_submits_one_gpu_per_trial_with_the_given_limit_and_partition(tmp_path, monkeypatch):
    """The sbatch script submitit would hand to SLURM for the sweep's trials (nothing is submitted)."""
    submitit = pytest.importorskip("submitit")
    # submitit refuses to build a SLURM executor where there is no srun; this one is never run.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    class Submitted(Exception):
        """Raised where the launcher would submit its job array."""

    executors = []

    def capture(executor, fn, *args):
        executors.append(executor)
        raise Submitted

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    cfg = compose_sweep(
        tmp_path / "sweep", "hydra/launcher=slurm", "hydra.launcher.timeout_min=240", "hydra.launcher.partition=gpu"
    )
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["seed=1"], ["seed=2"]], initial_job_idx=0)
    script = executors[0]._executor._make_submission_file_text("python -m submitit.core._submit DIR", "uid")
    for line in ("--gpus-per-node=1", "--ntasks-per-node=1", "--nodes=1", "--time=240", "--partition=gpu"):
        assert f"#SBATCH {line}\n" in script
    assert f"{tmp_path / 'sweep'}/.submitit/" in script  # the jobs' logs live in the sweep folder


def test_parallel_launcher_runs_two_trials_at_once_each_in_its_own_folder_and_wandb_group(tmp_path):
    """Each trial's config, checkpoint, grids and W&B run land in its folder; the W&B runs are one group
    named after the sweep folder (relative to where the sweep started), each named after its trial."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("wandb")
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=parallel",
        "seed=1,2",
        f"hydra.sweep.dir={sweep}",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "+trainer.enable_model_summary=false",
        "data.batch_size=8",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "callbacks.progress_bar=null",
        "callbacks.sample_quality=null",
        "logger=wandb",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    spans = []
    for trial, seed in (("0", 1), ("1", 2)):
        run = sweep / trial
        assert OmegaConf.load(run / "config.yaml").seed == seed
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
        assert ckpt[CONFIG_KEY]["seed"] == seed
        assert (run / "samples" / "samples_final.png").is_file()
        (logged,) = offline_runs(run)
        assert (logged.group, logged.name, logged.config["seed"]) == ("sweep", trial, seed)
        # Hydra writes .hydra/ when the trial starts, the checkpoint is written when it ends.
        spans.append(
            ((run / ".hydra" / "config.yaml").stat().st_mtime, (run / "checkpoints" / "last.ckpt").stat().st_mtime)
        )
    (start0, end0), (start1, end1) = spans
    assert start0 < end1 and start1 < end0, f"the trials ran one after the other: {spans}"
