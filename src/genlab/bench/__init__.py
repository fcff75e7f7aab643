"""Speed and quality benchmarks, run by hand: ``python -m genlab.bench <what> [options]``.

The helpers below are shared by the benches that time genlab beside reference code (cyclegan,
stylegan2); they import nothing heavy at module level, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path


def argument_parser(what: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m genlab.bench <what>``: ``--help`` shows that usage line, the bench
    module's docstring (its example commands, kept as written) and every option."""
    return argparse.ArgumentParser(
        prog=f"python -m genlab.bench {what}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def peak_memory_gib() -> float:
    """This process's peak resident memory. VmHWM belongs to the process image, whereas ru_maxrss
    carries the parent's peak across fork + exec."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def fit(model, datamodule, precision: str, callbacks: list) -> None:
    """One epoch of Lightning training on the CPU with nothing but ``callbacks`` around it."""
    import lightning as L

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    trainer.fit(model, datamodule=datamodule)


def in_subprocess(module: str, *args: str, env: dict[str, str] | None = None):
    """Run ``python -m module *args`` in a fresh process; returns the JSON of its last stdout line."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
