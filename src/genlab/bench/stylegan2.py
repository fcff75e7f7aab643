"""StyleGAN2 training speed on this machine: seconds per full iteration and peak memory, at identical
architecture, batch and resolution, for genlab and the reference implementations side by side.

    python -m genlab.bench stylegan2 --authors-code DIR [--rosinality-code DIR] [--configs cifar f]
    python -m genlab.bench stylegan2 --authors-code DIR --try channels-last bf16-mixed compile
    python -m genlab.bench stylegan2 --quick [--authors-code DIR]   # 32 channels: checks that it runs

Configs, from NVlabs/stylegan2-ada-pytorch's train.py (cfg_specs), at 32 px, unconditional, without
augmentation, in fp32 (num_fp16_res 0) with its conv_clamp 256, z = w = 512, channel_base 32768
(fmaps 1), channel_max 512, i.e. 512 channels at every resolution:

- ``cifar``: their ``cifar`` config at batch 8: 2 mapping layers, minibatch-stddev group 32 (so 8),
  'orig' discriminator, R1 γ 0.01 every 16 batches, no path length, no style mixing, lr 0.0025;
- ``f``: their ``stylegan2`` config (config F) at batch 4: 8 mapping layers, mbstd group 4, residual
  discriminator, R1 γ 10 every 16, path length (weight 2, every 4, batch shrink 2), mixing 0.9,
  lr 0.002. rosinality/stylegan2-pytorch's defaults are this config; it runs in this row only (its
  discriminator has no 'orig' form).

Loops, one full iteration each: G main, D main and the lazy phases that fall on it, the optimizer
steps and G's EMA update:

- ``lightning``: genlab's ``StyleGAN2.training_step`` under a Lightning ``Trainer`` (no logger,
  checkpoints or validation);
- ``plain``: the same genlab networks, losses and schedule in a plain PyTorch loop
  (:func:`plain_step`): what Lightning adds. ``--try`` adds variants of it: ``channels-last``
  (every 4-D weight in channels_last), ``bf16-mixed`` (CPU autocast) and ``compile`` (``torch.compile``
  of the synthesis network and D for the main phases; R1 and path length stay eager because
  torch.compile's autograd cannot differentiate twice: "torch.compile with aot_autograd does not
  currently support double backward", torch 2.14);
- ``nvlabs``: with ``--authors-code DIR``, their ``training.networks`` Generator/Discriminator and
  ``training.loss.StyleGAN2Loss`` driven as their ``training_loop`` does (phases Gmain, Greg, Dmain,
  Dreg with their gains, lazy Adam correction, nan_to_num of the gradients, G_ema). On the CPU their
  ops take their reference paths by themselves; nothing of theirs is patched;
- ``rosinality``: with ``--rosinality-code DIR``, their ``model.py`` networks and ``train.py``
  losses in their ``train()`` loop body, if their code imports: it compiles CUDA extensions at import,
  so on a machine without a CUDA toolkit its row says why it could not and the bench goes on.

Not identical by design: genlab's D main reuses G main's fakes (detached), where NVlabs' Dmain and
rosinality's D step run G again on fresh z: one G forward fewer per genlab iteration.

Timing: one process per config runs every loop interleaved iteration by iteration
(:mod:`genlab.bench.interleave`), so a machine that changes speed slows them alike. Every loop starts
at global step 16 (:data:`ALL_PHASES`, counting from 1), so its first, untimed iteration runs all four
phases once (first-call costs stay out of the figure; a first path-length phase measured several
times a later one under load) and its lazy phases fall on the same iterations as every other loop's
(path length on steps 20, 24, .., R1 on step 32); the figure is the mean over ``--iters`` (a multiple
of 16, one R1 cycle) after ``--warmup`` iterations. Peak memory: one fresh process per loop, which imports what that
loop needs, builds it and runs one iteration with all four phases; its VmHWM from /proc (ru_maxrss
where there is no /proc). That includes the interpreter and the imported libraries (genlab's rows
also carry Lightning and Hydra).

genlab's default stays fp32, contiguous tensors, eager mode: ``--try`` times the variants beside it
in the same process. What is known before timing: torch.compile covers the main phases only (above);
bf16 has no native matrix units on an AVX2-only CPU such as this machine's (no AVX-512 BF16 or AMX),
so it is not expected to win there; channels_last changes oneDNN's convolution layouts,
the depthwise FIR filters included, and is the one to measure (on 2 CPU cores it measured 4-6% slower
than NCHW at 512 channels, batch 4-8: README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from genlab.bench import argument_parser, fit, in_subprocess, peak_memory_gib
from genlab.bench.stylegan2_reference import (
    CONFIGS,
    LATENT,
    NVLABS_FILES,
    PL_INTERVAL,
    R1_INTERVAL,
    RESOLUTION,
    ROSINALITY_FILES,
    Config,
    NVlabsLoop,
    RosinalityLoop,
    import_from,
    params_of,
    rosinality_unavailable,
    scratch_extensions_dir,
)

ALL_PHASES = R1_INTERVAL - 1  # global step (from 0) on which both lazy phases fall: every loop starts there
TRY = ("channels-last", "bf16-mixed", "compile")  # variants of the plain loop
# Seconds per iteration quoted in the StyleGAN2 issue, on 2 idle cores of another machine "like ours".
QUOTED = {("cifar", "nvlabs"): "6.15", ("f", "rosinality"): "4.3-4.5"}


# --- genlab ------------------------------------------------------------------------------------


def build(config: Config, n_batches: int):
    """(datamodule, model) of ``model=stylegan2`` in ``config``'s architecture on 32 px shapes."""
    import lightning as L
    from hydra.utils import instantiate

    from genlab.config import compose_train

    c = config
    overrides = ["model=stylegan2", "data=shapes", f"data.image_size={RESOLUTION}", "data.channels=3"]
    overrides += [f"data.batch_size={c.batch}", f"data.n_train={c.batch * n_batches}", "data.n_val=8"]
    for net in ("generator", "discriminator"):
        overrides += [f"model.{net}.{key}={value}" for key, value in asdict(c).items() if key.startswith("channel_")]
        overrides += [f"++model.{net}.conv_clamp={c.conv_clamp}"]  # not in the preset: NVIDIA's fp16 guard
    overrides += [f"model.generator.{key}={LATENT}" for key in ("z_dim", "w_dim")]
    overrides += [f"model.generator.mapping_layers={c.mapping_layers}"]
    overrides += [
        f"model.discriminator.mbstd_group_size={c.mbstd_group}",
        f"++model.discriminator.residual={c.residual_d}",
    ]
    overrides += [f"model.{key}={getattr(c, key)}" for key in ("r1_gamma", "pl_weight", "style_mixing", "ema_kimg")]
    overrides += [f"model.ema_rampup={'null' if c.ema_rampup is None else c.ema_rampup}", "model.n_preview=8"]
    overrides += [f"model.optimizer_{player}.lr={c.lr}" for player in "gd"]
    overrides += [f"model.r1_interval={R1_INTERVAL}", f"model.pl_interval={PL_INTERVAL}"]
    cfg = compose_train(overrides, output_dir=tempfile.mkdtemp(prefix="genlab-bench-"))
    L.seed_everything(0, verbose=False)
    return instantiate(cfg.data), instantiate(cfg.model, _recursive_=False, _convert_="all")


def descend(opt, loss) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def plain_step(model, real, opt_g, opt_d, step: int, synthesis=None, discriminator=None) -> None:
    """``StyleGAN2.training_step``'s four phases in plain PyTorch, on global step ``step`` (from 0):
    the same networks, losses and lazy schedule. ``synthesis`` and ``discriminator`` run the main
    phases (compiled copies with ``--try compile``); the lazy phases differentiate twice and use the
    modules themselves."""
    from genlab import losses

    hp, g, d, n = model.hparams, model.generator, model.discriminator, len(real)
    synthesis, discriminator = synthesis or g.synthesis, discriminator or d
    d.requires_grad_(False)
    fake = synthesis(model.styles(n))
    descend(opt_g, losses.g_nonsaturating_loss(discriminator(model.augment(fake))))
    if hp.pl_weight > 0 and (step + 1) % hp.pl_interval == 0:
        ws = model.styles(max(1, n // hp.pl_batch_shrink))
        penalty, _, mean = losses.path_length_penalty(g.synthesis(ws), ws, model.pl_mean, hp.pl_decay)
        model.pl_mean.copy_(mean)
        descend(opt_g, penalty * hp.pl_weight * hp.pl_interval)
    d.requires_grad_(True)
    g.requires_grad_(False)
    logits_fake = discriminator(model.augment(fake.detach()))
    descend(opt_d, losses.d_nonsaturating_loss(discriminator(model.augment(real)), logits_fake))
    if hp.r1_gamma > 0 and (step + 1) % hp.r1_interval == 0:
        real_r1 = real.detach().requires_grad_(True)
        descend(opt_d, losses.r1_penalty(d(model.augment(real_r1)), real_r1) * (hp.r1_gamma / 2) * hp.r1_interval)
    g.requires_grad_(True)
    if model.generator_ema is not None:
        model.generator_ema.update(g, n, step * n)  # images seen before this batch, as Lightning counts them


class PlainLoop:
    """genlab's networks in :func:`plain_step`, with the ``--try`` variants in ``tried``."""

    def __init__(self, config: Config, first: int, tried: tuple[str, ...] = ()):
        import torch

        from genlab.bench.interleave import endless

        datamodule, self.model = build(config, n_batches=2)
        datamodule.setup("fit")
        self.batches = endless(datamodule.train_dataloader)
        self.opt_g, self.opt_d = self.model.configure_optimizers()
        self.step_index, self.bf16 = first, "bf16-mixed" in tried
        self.memory_format = torch.channels_last if "channels-last" in tried else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        g, d = self.model.generator, self.model.discriminator
        self.main = (torch.compile(g.synthesis), torch.compile(d)) if "compile" in tried else (g.synthesis, d)
        self.params = params_of(g, d)

    def step(self) -> None:
        import torch

        real = next(self.batches)[0].contiguous(memory_format=self.memory_format)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            plain_step(self.model, real, self.opt_g, self.opt_d, self.step_index, *self.main)
        self.step_index += 1


# --- workers (one process each) and the table ---------------------------------------------------


def make_loop(name: str, config: Config, first: int, args: argparse.Namespace):
    """The loop ``name`` (plain[+variant...], nvlabs, rosinality) starting at global step ``first``."""
    if name.startswith("plain"):
        return PlainLoop(config, first, tuple(name.split("+")[1:]))
    if name == "nvlabs":
        return NVlabsLoop(config, first, args.authors_code)
    return RosinalityLoop(config, first, args.rosinality_code)


def timing_worker(config: Config, args: argparse.Namespace) -> dict:
    """Seconds per iteration of every loop in ``args.loops``, interleaved iteration by iteration."""
    import torch

    from genlab.bench.interleave import Interleave

    others = {name: make_loop(name, config, ALL_PHASES, args) for name in args.loops if name != "lightning"}
    datamodule, model = build(config, n_batches=args.warmup + args.iters + 1)
    model.batches_seen.fill_(ALL_PHASES)
    interleave = Interleave({name: loop.step for name, loop in others.items()})
    fit(model, datamodule, "32-true", [interleave])
    params = {"lightning": params_of(model.generator, model.discriminator)}
    params.update({name: loop.params for name, loop in others.items()})
    times = {name: seconds[args.warmup :] for name, seconds in interleave.times.items()}
    return {"times": times, "params": params, "threads": torch.get_num_threads()}


def memory_worker(config: Config, args: argparse.Namespace) -> float:
    """Peak memory (GiB) of this fresh process after it built one loop and ran one iteration in which
    all four phases fall (global step 16)."""
    if args.loops[0] == "lightning":
        datamodule, model = build(config, n_batches=1)
        model.batches_seen.fill_(ALL_PHASES)
        fit(model, datamodule, "32-true", [])
    else:
        make_loop(args.loops[0], config, ALL_PHASES, args).step()
    return peak_memory_gib()


def check_checkout(flag: str, repo: str | None, needed: tuple[str, ...], upstream: str, holds: str) -> None:
    if repo is None:
        return
    missing = [name for name in needed if not (Path(repo) / name).is_file()]
    if missing:
        raise SystemExit(
            f"{flag} {repo}: not a checkout of {upstream} ({', '.join(missing)} not found there); pass the folder "
            f"that holds {holds}, e.g. a clone of https://github.com/{upstream}"
        )


def main(argv: list[str]) -> None:
    parser = argument_parser("stylegan2", __doc__)
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["cifar", "f"])
    parser.add_argument("--iters", type=int, default=R1_INTERVAL, help="timed iterations per loop (multiple of 16)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--no-plain", action="store_true", help="skip genlab's plain PyTorch loop")
    parser.add_argument("--try", dest="variants", nargs="+", choices=TRY, default=[], help="variants of the plain loop")
    parser.add_argument(
        "--channel-max", type=int, default=512, help="channels of every implementation (512: the configs')"
    )
    parser.add_argument("--quick", action="store_true", help="32 channels, 1 + 16 iterations: checks that it runs")
    parser.add_argument("--authors-code", metavar="DIR", help="a checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--rosinality-code", metavar="DIR", help="a checkout of rosinality/stylegan2-pytorch")
    parser.add_argument("--worker", choices=["timing", "memory", "probe"], help=argparse.SUPPRESS)
    parser.add_argument("--loops", nargs="+", default=["lightning"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.channel_max, args.iters, args.warmup = 32, R1_INTERVAL, 1
    if args.iters < R1_INTERVAL or args.iters % R1_INTERVAL:
        parser.error(
            f"--iters {args.iters}: use a multiple of {R1_INTERVAL}, so that every loop's timed iterations hold one R1 per 16"
        )
    check_checkout(
        "--authors-code",
        args.authors_code,
        NVLABS_FILES,
        "NVlabs/stylegan2-ada-pytorch",
        "train.py, training/ and torch_utils/",
    )
    check_checkout(
        "--rosinality-code",
        args.rosinality_code,
        ROSINALITY_FILES,
        "rosinality/stylegan2-pytorch",
        "model.py, train.py and op/",
    )
    configs = [replace(CONFIGS[name], channel_max=args.channel_max) for name in args.configs]
    if args.worker == "probe":
        import_from(args.rosinality_code, "model", "train")
        print(json.dumps(True))
    elif args.worker == "timing":
        print(json.dumps(timing_worker(configs[0], args)))
    elif args.worker == "memory":
        print(json.dumps(memory_worker(configs[0], args)))
    else:
        report(compare(args, configs), args, argv)


def compare(args: argparse.Namespace, configs: list[Config]) -> list[dict]:
    module = "genlab.bench.stylegan2"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": scratch_extensions_dir()} if args.rosinality_code else None
    rows = []
    for config in configs:
        loops = ["lightning"] + ([] if args.no_plain else ["plain"]) + [f"plain+{v}" for v in args.variants]
        loops += ["nvlabs"] if args.authors_code else []
        why = rosinality_unavailable(args.rosinality_code, config) if args.rosinality_code else None
        loops += ["rosinality"] if args.rosinality_code and why is None else []
        where = ["--configs", config.name, "--channel-max", str(config.channel_max)]
        where += [
            word
            for flag in ("authors_code", "rosinality_code")
            if getattr(args, flag)
            for word in (f"--{flag.replace('_', '-')}", getattr(args, flag))
        ]
        timing = ["--iters", str(args.iters), "--warmup", str(args.warmup)]
        timed = in_subprocess(module, "--worker", "timing", *where, *timing, "--loops", *loops, env=env)
        for loop in loops:
            peak = in_subprocess(module, "--worker", "memory", *where, "--loops", loop, env=env)
            rows.append({"config": config.name, "loop": loop, "times": timed["times"][loop], "peak_gib": peak})
            rows[-1].update(timed["params"][loop], threads=timed["threads"])
        if why is not None:
            rows.append({"config": config.name, "loop": "rosinality", "why": why})
    return rows


def report(rows: list[dict], args: argparse.Namespace, argv: list[str]) -> None:
    timed = [r for r in rows if "times" in r]
    print(
        f"\nStyleGAN2 training iterations at {RESOLUTION} px, {args.channel_max} channels, fp32 unless named: G main, D main, "
        f"path length every {PL_INTERVAL} and R1 every {R1_INTERVAL} batches (where the config has them), G EMA.\n"
        f"s/iter = mean of {args.iters} iterations after {args.warmup} warm-up; a config's loops interleaved in one process, "
        f"{timed[0]['threads']} threads. median = the typical iteration without lazy phases. "
        "peak = VmHWM of a process running that loop alone."
    )
    nvlabs = {r["config"]: statistics.mean(r["times"]) for r in timed if r["loop"] == "nvlabs"}
    print(
        f"{'config':<7}{'loop':<22}{'G params':>12}{'D params':>12}{'s/iter':>9}{'median':>9}{'vs nvlabs':>11}{'peak':>11}{'quoted':>9}"
    )
    for r in rows:
        if "why" in r:
            print(f"{r['config']:<7}{r['loop']:<22}{r['why']}")
            continue
        mean = statistics.mean(r["times"])
        versus = f"{mean / nvlabs[r['config']]:.2f}x" if r["config"] in nvlabs else "-"
        print(
            f"{r['config']:<7}{r['loop']:<22}{r['params_g']:>12,}{r['params_d']:>12,}{mean:>9.3f}"
            f"{statistics.median(r['times']):>9.3f}{versus:>11}{r['peak_gib']:>7.2f} GiB{QUOTED.get((r['config'], r['loop']), '-'):>9}"
        )
    for config in {r["config"] for r in timed}:
        counts = {(r["params_g"], r["params_d"]) for r in timed if r["config"] == config and r["loop"] != "rosinality"}
        if len(counts) > 1:
            print(
                f"WARNING: {config}: genlab's and NVlabs' parameter counts differ: the architectures are not the same"
            )
    for r in timed:
        print(f"{r['config']} {r['loop']} iterations (s): " + " ".join(f"{t:.3f}" for t in r["times"]))
    print(
        "vs nvlabs = s/iter over NVlabs' s/iter in the same process (< 1: faster than the authors' code); quoted = s/iter on 2 idle cores elsewhere"
    )
    print("reproduce: python -m genlab.bench stylegan2 " + " ".join(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
