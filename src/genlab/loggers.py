"""Lightning's loggers without the lines they print on every run that no user can act on.

- Lightning 2.6 logs a promotional "💡 Tip: For seamless cloud ..." (litlogger, litmodels) each time
  a ``Trainer`` is built. :class:`DropLightningTips` drops exactly those records; conf/hydra/default.yaml
  puts it on the loggers Lightning's ``rank_zero_info`` writes to, so train.py runs without them.
- Lightning's ``WandbLogger`` always hands ``anonymous=`` to ``wandb.init`` (``None`` unless asked),
  and wandb >= 0.19 then warns "The anonymous setting has no effect" whatever the value.
  :class:`WandbLogger` leaves the argument out unless the user sets it.
"""

from __future__ import annotations

import logging

from lightning.pytorch import loggers

TIP_PREFIX = "💡 Tip: For seamless cloud"  # the opening of every promotional tip Lightning 2.6 logs


class DropLightningTips(logging.Filter):
    """A logging filter that drops the records starting with :data:`TIP_PREFIX` and keeps all others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


class WandbLogger(loggers.WandbLogger):
    """Lightning's ``WandbLogger``; ``anonymous`` reaches ``wandb.init`` only when it is set."""

    def __init__(self, *args, anonymous: bool | None = None, **kwargs):
        super().__init__(*args, anonymous=anonymous, **kwargs)
        if anonymous is None:
            self._wandb_init.pop("anonymous", None)  # what Lightning passes to wandb.init
