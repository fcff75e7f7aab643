"""How metric keys are spelled, in one place: the callback that logs them, the best checkpoint that
monitors them, the sweeps that optimise them and the run summary that prints them all read this.

A sample-quality key carries its protocol: ``val/fid1000[classifier]`` is FID of 1000 generated
images against 1000 real ones on the ``classifier`` extractor; translators add the direction
(``val/fid120_a2b[classifier]``), spreads add ``_std`` (``val/kid1000_std[inception]``).
"""

from __future__ import annotations

import re

# The statistic's name as it appears in keys, for each metric of genlab.metrics.quality.
STATISTICS = {
    "fid": ("fid",),
    "kid": ("kid", "kid_std"),
    "is": ("is", "is_std"),
    "pr": ("precision", "recall"),
    "copy": ("copy", "copyz"),
}
_QUALITY = re.compile(
    r"^(?:(?P<stage>\w+)/)?(?P<stat>[a-z]+)(?P<n>\d+)(?P<tag>_[ab]2[ab])?(?P<std>_std)?\[(?P<x>\w+)\]$"
)


def sample_key(stat: str, n: int, extractor: str, direction: str | None = None, stage: str | None = "val") -> str:
    """``sample_key("fid", 1000, "classifier")`` -> ``val/fid1000[classifier]``; ``stat`` may end in ``_std``."""
    base, std = (stat[: -len("_std")], "_std") if stat.endswith("_std") else (stat, "")
    tag = f"_{direction}" if direction else ""
    key = f"{base}{n}{tag}{std}[{extractor}]"
    return f"{stage}/{key}" if stage else key


def is_sample_key(key: str) -> bool:
    """Whether ``key`` is a sample-quality key (the kind :func:`sample_key` writes)."""
    return _QUALITY.match(key) is not None
