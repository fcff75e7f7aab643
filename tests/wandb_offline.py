"""Read what an offline W&B run wrote, for tests: its ``run-<id>.wandb`` file holds everything that
``wandb sync`` would upload (config, history, summary, artifacts); offline runs write no
``wandb-summary.json`` or ``config.yaml``, and wandb >= 0.18 ships no Python reader of that file.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB
blocks of chunks, each ``crc32c (4) | length (2, little-endian) | type (1: full, 2: first, 3: middle,
4: last) | data``; a chunk never crosses a block, the block's tail under 7 bytes is padding. Each full
(or first..last) payload is one ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    """Every ``Record`` of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    if raw[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log (starts with {raw[:7]!r})")
    pos, payload = HEADER, b""
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # padding at the end of a block
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        pos += HEADER
        if kind == 0:  # zero-filled rest of a block (a writer that pre-allocates)
            pos += left - HEADER
            continue
        payload += raw[pos : pos + length]
        pos += length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            payload = b""
            yield record


def _nested(items) -> dict[str, Any]:
    """Summary/history items (``key`` or ``nested_key`` path, JSON value) as one nested dict."""
    out: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


@dataclass
class OfflineRun:
    """One offline run folder (``wandb/offline-run-<time>-<id>``), as its records say."""

    folder: Path
    group: str = ""
    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Any] = field(default_factory=list)  # ArtifactRecord protos
    exit_code: int | None = None

    @classmethod
    def read(cls, folder: Path) -> OfflineRun:
        (log,) = folder.glob("run-*.wandb")
        run = cls(folder)
        for record in records(log):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.group, run.name = record.run.run_group, record.run.display_name
                run.config.update({u.key: json.loads(u.value_json) for u in record.run.config.update})
            elif kind == "config":
                run.config.update({u.key: json.loads(u.value_json) for u in record.config.update})
            elif kind == "history":
                run.history.append(_nested(record.history.item))
            elif kind == "summary":
                run.summary.update(_nested(record.summary.update))
            elif kind == "artifact":
                run.artifacts.append(record.artifact)
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
        return run

    def rows_with(self, key: str) -> list[dict[str, Any]]:
        return [row for row in self.history if key in row]

    def table(self, key: str) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the ``wandb.Table`` logged as ``key``; image cells become the paths of their
        PNG files (staged for upload under ``$WANDB_DATA_DIR``, where an offline run keeps them)."""
        for artifact in self.artifacts:
            files = {entry.path: Path(entry.local_path) for entry in artifact.manifest.contents}
            if artifact.type == "run_table" and f"{key}.table.json" in files:
                table = json.loads(files[f"{key}.table.json"].read_text())
                rows = [
                    [files[c["path"]] if isinstance(c, dict) and c.get("_type") == "image-file" else c for c in row]
                    for row in table["data"]
                ]
                return table["columns"], rows
        raise KeyError(f"no table {key} in {self.folder}")


def offline_runs(save_dir: Path, timeout: float = 60) -> list[OfflineRun]:
    """The finished offline runs a WandbLogger with ``save_dir`` wrote, oldest first. ``run.finish()``
    returns before wandb's service has written the last records, so each is read again until it ends
    with its exit record (or ``timeout`` seconds pass)."""
    runs = []
    for folder in sorted((save_dir / "wandb").glob("offline-run-*")):
        deadline = time.monotonic() + timeout
        while (run := OfflineRun.read(folder)).exit_code is None and time.monotonic() < deadline:
            time.sleep(0.2)
        runs.append(run)
    return runs
