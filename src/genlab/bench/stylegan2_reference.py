"""The reference implementations' iterations, as ``python -m genlab.bench stylegan2`` drives them from
the checkouts the user passes, and the configs every implementation is built with.

Their code is imported from that folder, never copied here; nothing of theirs is patched. Their
loops are re-typed from NVlabs' ``training/training_loop.py`` and rosinality's ``train.py``
(the parts that run per iteration), because both live inside functions that also load datasets,
write snapshots and log.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

RESOLUTION, LATENT = 32, 512
R1_INTERVAL, PL_INTERVAL = 16, 4  # their training_loop's D_reg_interval and G_reg_interval, genlab's defaults
NVLABS_FILES = ("dnnlib/__init__.py", "torch_utils/ops/upfirdn2d.py", "training/networks.py", "training/loss.py")
ROSINALITY_FILES = ("model.py", "train.py", "op/__init__.py")


@dataclass(frozen=True)
class Config:
    """One row group: what every implementation is built with."""

    name: str
    batch: int
    mapping_layers: int
    mbstd_group: int
    residual_d: bool  # False = NVIDIA's 'orig' discriminator
    r1_gamma: float
    pl_weight: float  # 0 = no path-length phase (their Greg phase still runs, empty)
    style_mixing: float
    lr: float
    ema_kimg: float
    ema_rampup: float | None
    channel_max: int = 512
    channel_base: int = 32768
    conv_clamp: float = 256.0  # train.py sets it for every config


CONFIGS = {
    "cifar": Config("cifar", 8, 2, 32, False, 0.01, 0.0, 0.0, 0.0025, 500.0, 0.05),
    "f": Config("f", 4, 8, 4, True, 10.0, 2.0, 0.9, 0.002, 10.0, None),
}


def params_of(generator, discriminator) -> dict[str, int]:
    return {
        "params_g": sum(p.numel() for p in generator.parameters()),
        "params_d": sum(p.numel() for p in discriminator.parameters()),
    }


def import_from(repo: str, *modules: str) -> list:
    """``modules`` of a checkout that is a folder of top-level modules (no package to install)."""
    import importlib

    sys.path.insert(0, str(Path(repo).resolve()))
    return [importlib.import_module(name) for name in modules]


def random_reals(batch: int):
    import torch

    return torch.rand(batch, 3, RESOLUTION, RESOLUTION) * 2 - 1


class NVlabsLoop:
    """NVlabs/stylegan2-ada-pytorch's iteration: their ``training_loop``'s phase loop (one GPU, one
    round per phase, no augmentation) around their ``StyleGAN2Loss.accumulate_gradients``, with
    their networks built as ``train.py`` builds them for ``config`` (fp32: ``num_fp16_res=0``)."""

    def __init__(self, config: Config, first: int, repo: str):
        import torch

        networks, loss = import_from(repo, "training.networks", "training.loss")
        c, common = config, {"c_dim": 0, "img_resolution": RESOLUTION, "img_channels": 3}
        sizes = {
            "channel_base": c.channel_base,
            "channel_max": c.channel_max,
            "num_fp16_res": 0,
            "conv_clamp": c.conv_clamp,
        }
        g_kwargs = {"z_dim": LATENT, "w_dim": LATENT, "mapping_kwargs": {"num_layers": c.mapping_layers}}
        g_kwargs.update(synthesis_kwargs=sizes, **common)
        self.g = networks.Generator(**g_kwargs).train().requires_grad_(False)
        self.g_ema = networks.Generator(**g_kwargs).eval().requires_grad_(False)
        self.g_ema.load_state_dict(self.g.state_dict())  # what their copy.deepcopy(G) gives
        self.d = (
            networks.Discriminator(
                architecture="resnet" if c.residual_d else "orig",
                epilogue_kwargs={"mbstd_group_size": c.mbstd_group},
                **sizes,
                **common,
            )
            .train()
            .requires_grad_(False)
        )
        self.loss = loss.StyleGAN2Loss(
            device=torch.device("cpu"), G_mapping=self.g.mapping, G_synthesis=self.g.synthesis, D=self.d,
            style_mixing_prob=c.style_mixing, r1_gamma=c.r1_gamma, pl_weight=c.pl_weight,
        )  # fmt: skip
        self.phases = []  # (name, module, optimizer, interval), as their training_loop sets them up
        for name, module, interval in (("G", self.g, PL_INTERVAL), ("D", self.d, R1_INTERVAL)):
            ratio = interval / (interval + 1)
            opt = torch.optim.Adam(module.parameters(), lr=c.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
            self.phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
        # their batch_idx % interval == 0 lands on genlab's (step + 1) % interval == 0
        self.config, self.batch_idx, self.images_seen = c, first + 1, first * c.batch
        self.params = params_of(self.g, self.d)

    def step(self) -> None:
        import torch

        c = self.config
        real, labels = random_reals(c.batch), torch.zeros(c.batch, 0)
        for (name, module, opt, interval), gen_z in zip(self.phases, torch.randn(len(self.phases), c.batch, LATENT)):
            if self.batch_idx % interval != 0:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            self.loss.accumulate_gradients(
                phase=name, real_img=real, real_c=labels, gen_z=gen_z, gen_c=labels, sync=True, gain=interval
            )
            module.requires_grad_(False)
            for param in module.parameters():
                if param.grad is not None:
                    torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
            opt.step()
        ema_nimg = c.ema_kimg * 1000
        if c.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.images_seen * c.ema_rampup)
        beta = 0.5 ** (c.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.g_ema.parameters(), self.g.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(self.g_ema.buffers(), self.g.buffers()):
                b_ema.copy_(b)
        self.images_seen += c.batch
        self.batch_idx += 1


class RosinalityLoop:
    """rosinality/stylegan2-pytorch's iteration: their ``train()`` loop body (D step, lazy R1, G step,
    lazy path length, EMA ``accumulate``; no augmentation, no logging) with their ``model.py``
    networks and ``train.py`` losses, at their defaults, which are config F."""

    def __init__(self, config: Config, first: int, repo: str):
        import torch

        self.model, self.train = import_from(repo, "model", "train")
        c = config
        self.g = self.model.Generator(RESOLUTION, LATENT, c.mapping_layers, channel_multiplier=2)
        self.g_ema = self.model.Generator(RESOLUTION, LATENT, c.mapping_layers, channel_multiplier=2).eval()
        self.train.accumulate(self.g_ema, self.g, 0)
        self.d = self.model.Discriminator(RESOLUTION, channel_multiplier=2)
        self.opts = []
        for module, interval in ((self.g, PL_INTERVAL), (self.d, R1_INTERVAL)):
            ratio = interval / (interval + 1)
            self.opts.append(torch.optim.Adam(module.parameters(), lr=c.lr * ratio, betas=(0.0, 0.99**ratio)))
        self.config, self.i, self.mean_path_length = c, first + 1, 0  # their i % every == 0 on genlab's steps
        self.params = params_of(self.g, self.d)

    def step(self) -> None:
        t, c, g, d = self.train, self.config, self.g, self.d
        g_optim, d_optim = self.opts
        real = random_reals(c.batch)
        t.requires_grad(g, False)
        t.requires_grad(d, True)
        fake, _ = g(t.mixing_noise(c.batch, LATENT, c.style_mixing, "cpu"))
        d_loss = t.d_logistic_loss(d(real), d(fake))
        d.zero_grad()
        d_loss.backward()
        d_optim.step()
        if self.i % R1_INTERVAL == 0:
            real.requires_grad = True
            real_pred = d(real)
            d.zero_grad()
            (c.r1_gamma / 2 * t.d_r1_loss(real_pred, real) * R1_INTERVAL + 0 * real_pred[0]).backward()
            d_optim.step()
        t.requires_grad(g, True)
        t.requires_grad(d, False)
        fake, _ = g(t.mixing_noise(c.batch, LATENT, c.style_mixing, "cpu"))
        g.zero_grad()
        t.g_nonsaturating_loss(d(fake)).backward()
        g_optim.step()
        if self.i % PL_INTERVAL == 0:
            fake, latents = g(t.mixing_noise(max(1, c.batch // 2), LATENT, c.style_mixing, "cpu"), return_latents=True)
            path_loss, self.mean_path_length, _ = t.g_path_regularize(fake, latents, self.mean_path_length)
            g.zero_grad()
            (c.pl_weight * PL_INTERVAL * path_loss + 0 * fake[0, 0, 0, 0]).backward()
            g_optim.step()
        t.accumulate(self.g_ema, g, 0.5 ** (32 / (10 * 1000)))
        self.i += 1


def rosinality_unavailable(repo: str, config: Config) -> str | None:
    """Why rosinality's code cannot run ``config`` here (one line), or None. Its import compiles CUDA
    extensions (into a scratch TORCH_EXTENSIONS_DIR), so it is tried in a child process first."""
    if config.name != "f" or config.channel_max != 512:
        return "runs config F at 512 channels only (fixed channel table, residual D, mbstd group 4)"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": scratch_extensions_dir()}
    cmd = [sys.executable, "-m", "genlab.bench.stylegan2", "--worker", "probe", "--rosinality-code", repo]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        return "its import (which compiles CUDA extensions) did not finish in 15 minutes"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return "cannot import here: " + (lines[-1][:200] if lines else f"exit status {done.returncode}")


def scratch_extensions_dir() -> str:
    """Where rosinality's import builds its extensions: one folder per bench run, shared by its workers."""
    if "GENLAB_BENCH_EXTENSIONS" not in os.environ:
        path = tempfile.mkdtemp(prefix="genlab-bench-torch-extensions-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)  # the process that made it removes it
        os.environ["GENLAB_BENCH_EXTENSIONS"] = path
    return os.environ["GENLAB_BENCH_EXTENSIONS"]
