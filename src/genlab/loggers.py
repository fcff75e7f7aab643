"""Lightning's loggers without the lines they print on every run that no user can act on.

- Lightning 2.6 logs a promotional "💡 Tip: For seamless cloud ..." (litlogger, litmodels) each time
  a ``Trainer`` is built. :class:`DropLightningTips` drops exactly those records; conf/hydra/default.yaml
  puts it on the loggers Lightning's ``rank_zero_info`` writes to, so train.py runs without them.
- Lightning's ``WandbLogger`` always hands ``anonymous=`` to ``wandb.init`` (``None`` unless asked),
  and wandb >= 0.19 then warns "The anonymous setting has no effect" whatever the value.
  :class:`WandbLogger` leaves the argument out unless the user sets it.
- What a W&B dashboard needs from a genlab run and Lightning's logger does not give: see :class:`WandbLogger`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import loggers
from lightning.pytorch.utilities import rank_zero_only

TIP_PREFIX = "💡 Tip: For seamless cloud"  # the opening of every promotional tip Lightning 2.6 logs


class DropLightningTips(logging.Filter):
    """A logging filter that drops the records starting with :data:`TIP_PREFIX` and keeps all others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


class WandbLogger(loggers.WandbLogger):
    """Lightning's ``WandbLogger``, with what a dashboard of genlab runs needs:

    - ``offline=True`` (genlab's default) runs ``wandb.init(mode="offline")``: the run is written under
      ``save_dir/wandb/offline-run-*`` and uploaded later by ``wandb sync``; nothing waits for a network.
      Lightning would instead set ``WANDB_MODE`` for the whole process and refuse ``log_model`` offline,
      although offline W&B keeps checkpoint artifacts and ``wandb sync`` uploads them with the run.
    - The run's config is genlab's resolved run config (``model.*``, ``data.*``, ``trainer.*``, ``seed``,
      ...) once :meth:`record_config` is given it, rather than the module's constructor arguments.
    - ``group=None`` inside a Hydra multirun is the sweep folder, ``name=None`` the trial's folder in it:
      a sweep's trials are one group of one dashboard.
    - The run is finished when training ends (Lightning leaves it open), so the next trial of a multirun
      in the same process starts a run of its own instead of writing into this one.
    - ``anonymous`` reaches ``wandb.init`` only when it is set.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        offline: bool = False,
        group: str | None = None,
        anonymous: bool | None = None,
        **kwargs,
    ):
        trial = sweep_trial() if group is None else None
        if trial is not None:
            group, name = trial[0], name or trial[1]
        if offline:
            kwargs.setdefault("mode", "offline")
        # offline=False for Lightning: its offline means WANDB_MODE=dryrun for the process, and no log_model.
        super().__init__(name=name, offline=False, group=group, anonymous=anonymous, **kwargs)
        self._run_config: dict[str, Any] | None = None
        if anonymous is None:
            self._wandb_init.pop("anonymous", None)  # what Lightning passes to wandb.init

    def record_config(self, config: dict[str, Any]) -> None:
        """Make ``config`` (plain, resolved) the W&B run's config, in place of the module's hyper-parameters
        (which are its ``model`` entry already)."""
        self._run_config = config
        if self._experiment is None:
            self._wandb_init["config"] = config
        else:
            self._experiment.config.update(config, allow_val_change=True)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        if self._run_config is None:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)  # logs the checkpoints as artifacts when log_model=true
        # "finished" is Lightning's SLURM requeue handler, after which training goes on.
        if status in ("success", "failed") and self._experiment is not None:
            self._experiment.finish(exit_code=0 if status == "success" else 1)


def sweep_trial() -> tuple[str, str] | None:
    """``(sweep folder, trial folder in it)`` of the Hydra multirun trial this process runs, None outside one.
    The sweep folder is relative to where the sweep was started when it lies below it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    sweep, trial = Path(hydra.sweep.dir).resolve(), Path(hydra.runtime.output_dir).resolve()
    cwd = Path(hydra.runtime.cwd).resolve()
    group = sweep.relative_to(cwd) if sweep.is_relative_to(cwd) else sweep
    name = trial.relative_to(sweep) if trial.is_relative_to(sweep) else trial
    return str(group), str(name)
