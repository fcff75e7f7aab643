"""CycleGAN training speed on this machine: seconds per iteration (G_A, G_B, D_A, D_B updated once
on one A and one B image) and peak memory, at the paper's architecture (ResNet-9 generators,
70x70 PatchGANs, ngf = ndf = 64, batch 1), side by side with the authors' implementation.

    python -m genlab.bench cyclegan [--sizes 128 256] [--iters 10] [--warmup 2] [--no-plain]
                                    [--precision 32-true bf16-mixed] [--authors-code DIR]
    python -m genlab.bench cyclegan --quick          # 128 px, 2 iterations: checks that it runs
    python -m genlab.bench cyclegan --shapes-ckpt CKPT   # quality, not speed: see genlab.bench.cyclegan_shapes

Loops:

- ``lightning``: genlab's ``CycleGAN.training_step`` under a Lightning ``Trainer`` (no logger,
  checkpoints or validation);
- ``plain``: the same networks and losses in the reference's plain PyTorch loop (its
  ``optimize_parameters``): what Lightning adds;
- ``authors``: with ``--authors-code DIR`` (a checkout of junyanz/pytorch-CycleGAN-and-pix2pix),
  their own ``CycleGANModel.optimize_parameters``, fp32. Without it, the table quotes their times
  measured on another machine (``QUOTED``).

Times: one process per (size, precision) runs the loops interleaved iteration by iteration
(:mod:`genlab.bench.interleave`), so a machine that changes speed slows all of them alike. Peak
memory: one process per loop, two iterations each (the peak is reached in the first). The FLOP count
and this CPU's matrix-multiply rate bound what any fp32 implementation can reach.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from genlab.bench import argument_parser, cyclegan_shapes, fit, in_subprocess, peak_memory_gib

# The authors' code (resnet_9blocks, batch 1) as timed on 2 idle cores of another machine "like ours",
# quoted in the CycleGAN issue: (s/iteration low, high, peak RSS GiB).
QUOTED = {128: (1.9, 2.1, 1.9), 256: (7.3, 8.5, 4.0)}


def plain_step(model, real_a, real_b, opt_g, opt_d) -> None:
    """The reference's optimize_parameters in plain PyTorch, with genlab's networks and losses."""
    ds = [model.d_a, model.d_b]
    for d in ds:
        d.requires_grad_(False)
    terms, fake_a, fake_b = model.generator_losses(real_a, real_b)
    opt_g.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    opt_g.step()
    for d in ds:
        d.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    (0.5 * model.d_loss(model.d_a(real_b), model.d_a(model.pool_b.query(fake_b)))).backward()
    (0.5 * model.d_loss(model.d_b(real_a), model.d_b(model.pool_a.query(fake_a)))).backward()
    opt_d.step()


def build(size: int, n_train: int):
    """(datamodule, model) of ``model=cyclegan`` with ResNet-9 generators (what the authors timed at
    both sizes) on ``n_train`` shapes at ``size`` px."""
    import lightning as L
    from hydra.utils import instantiate

    from genlab.config import compose_train

    overrides = ["model=cyclegan", "model.generator.n_blocks=9", "data=shapes_unpaired", f"data.image_size={size}"]
    overrides += ["data.batch_size=1", f"data.n_train={n_train}", "data.n_val=1"]
    cfg = compose_train(overrides, output_dir=tempfile.mkdtemp(prefix="genlab-bench-"))
    L.seed_everything(0, verbose=False)
    return instantiate(cfg.data), instantiate(cfg.model, _recursive_=False, _convert_="all")


class PlainLoop:
    """genlab's networks and losses in the reference's plain loop (CPU autocast for bf16-mixed)."""

    def __init__(self, size: int, precision: str, n_train: int = 4):
        from genlab.bench.interleave import endless

        datamodule, self.model = build(size, n_train)
        datamodule.setup("fit")
        self.batches = endless(datamodule.train_dataloader)
        self.opt_g, self.opt_d = self.model.configure_optimizers()[0]
        self.bf16 = precision == "bf16-mixed"

    def step(self) -> None:
        import torch

        batch = next(self.batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            plain_step(self.model, batch["a"], batch["b"], self.opt_g, self.opt_d)


# Their train.py's command line for the timed model: ``python train.py --dataroot D --name bench
# --checkpoints_dir D --model cycle_gan --netG resnet_9blocks --gpu_ids -1`` (CPU, as genlab's loops).
AUTHORS_FLAGS = {"--name": "bench", "--model": "cycle_gan", "--netG": "resnet_9blocks", "--gpu_ids": "-1"}


def authors_options(scratch: str) -> argparse.Namespace:
    """The options object their ``train.py`` would get for :data:`AUTHORS_FLAGS`, built by their own
    ``TrainOptions().parse()`` of the checkout on ``sys.path``: every field their code reads, and every
    field their parser derives after parsing (``gpu_ids`` as a list; ``device`` in checkouts since
    2025), is set the way that checkout sets it. Flags their parser does not define are left out
    (e.g. ``--gpu_ids`` where a checkout picks the device itself), and the device is then pinned to the
    CPU. ``scratch`` receives their ``--dataroot`` (parsed, never read) and their options file."""
    import contextlib
    from unittest import mock

    import torch
    from options.train_options import TrainOptions  # theirs

    probe = argparse.ArgumentParser()
    TrainOptions().initialize(probe)  # the base + training options (model options come in parse())
    defined = vars(probe.parse_known_args(["--dataroot", scratch])[0])
    argv = ["train.py", "--dataroot", scratch, "--checkpoints_dir", scratch]
    argv += [word for flag, value in AUTHORS_FLAGS.items() if flag[2:] in defined for word in (flag, value)]
    with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(sys.stderr):  # it prints the options
        opt = TrainOptions().parse()
    if hasattr(opt, "device"):
        opt.device = torch.device("cpu")
    return opt


class AuthorsLoop:
    """The authors' own iteration (``CycleGANModel.set_input`` + ``optimize_parameters``) from a
    checkout of junyanz/pytorch-CycleGAN-and-pix2pix, with the options their own parser builds for
    :data:`AUTHORS_FLAGS` (:func:`authors_options`), on random images."""

    def __init__(self, size: int, repo: str):
        import contextlib
        import importlib

        sys.path.insert(0, str(Path(repo).resolve()))  # their code is a folder of modules, not a package
        cycle_gan_model = importlib.import_module("models.cycle_gan_model")
        opt = authors_options(tempfile.mkdtemp(prefix="genlab-bench-authors-"))
        with contextlib.redirect_stdout(sys.stderr):  # their code prints; our stdout carries the JSON
            self.model = cycle_gan_model.CycleGANModel(opt)
        self.size = size

    def step(self) -> None:
        import torch

        images = torch.rand(2, 1, 3, self.size, self.size) * 2 - 1
        self.model.set_input({"A": images[0], "B": images[1], "A_paths": [""], "B_paths": [""]})
        self.model.optimize_parameters()


def timing_worker(size: int, iters: int, warmup: int, precision: str, loops: list[str], repo: str | None) -> dict:
    """Seconds per iteration of every loop, interleaved iteration by iteration in this process."""
    import torch

    from genlab.bench.interleave import Interleave

    others = {}
    if "plain" in loops:
        others["plain"] = PlainLoop(size, precision).step
    if "authors" in loops:
        others["authors"] = AuthorsLoop(size, repo).step
    datamodule, model = build(size, n_train=warmup + iters + 1)
    interleave = Interleave(others)
    fit(model, datamodule, precision, [interleave])
    times = {name: seconds[warmup:] for name, seconds in interleave.times.items()}
    return {
        "size": size,
        "precision": precision,
        "times": times,
        "threads": torch.get_num_threads(),
        "params_g": sum(p.numel() for p in model.g_a.parameters()) / 1e6,
        "params_d": sum(p.numel() for p in model.d_a.parameters()) / 1e6,
    }


def memory_worker(size: int, loop: str, precision: str, repo: str | None) -> float:
    """Peak memory (GiB) of a fresh process that builds one loop and runs two iterations of it."""
    if loop == "lightning":
        datamodule, model = build(size, n_train=3)
        fit(model, datamodule, precision, [])
    else:
        step = PlainLoop(size, precision).step if loop == "plain" else AuthorsLoop(size, repo).step
        step()
        step()
    return peak_memory_gib()


def iteration_flops(size: int) -> float:
    """Floating-point operations of one iteration, counted by PyTorch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build(size, n_train=2)[1]
    opt_g, opt_d = model.configure_optimizers()[0]
    images = torch.rand(2, 1, model.g_a.channels, size, size) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        plain_step(model, images[0], images[1], opt_g, opt_d)
    return counter.get_total_flops()


def gemm_rate(n: int = 4096, reps: int = 5) -> dict[str, float]:
    """This CPU's matrix-multiply throughput in GFLOP/s, fp32 and bf16: the ceiling for conv nets."""
    import torch

    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        rates[str(dtype).removeprefix("torch.")] = 2 * n**3 * reps / (time.perf_counter() - start) / 1e9
    return rates


def main(argv: list[str]) -> None:
    parser = argument_parser("cyclegan", __doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="crop sizes in px")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per loop")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch loop")
    parser.add_argument("--quick", action="store_true", help="128 px, 1 + 2 iterations, Lightning only")
    parser.add_argument(
        "--precision", nargs="+", default=["32-true"], help="genlab precisions to time, e.g. 32-true bf16-mixed"
    )
    parser.add_argument("--authors-code", metavar="DIR", help="a checkout of junyanz/pytorch-CycleGAN-and-pix2pix")
    parser.add_argument("--worker", choices=["timing", "memory", "flops"], help=argparse.SUPPRESS)
    parser.add_argument("--loops", nargs="+", default=["lightning"], help=argparse.SUPPRESS)
    cyclegan_shapes.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.shapes_ckpt:
        cyclegan_shapes.run(args)
        return
    if args.quick:
        args.sizes, args.iters, args.warmup, args.no_plain = [128], 2, 1, True
    size, precision, repo = args.sizes[0], args.precision[0], args.authors_code
    if args.worker == "flops":
        print(json.dumps(iteration_flops(size)))
    elif args.worker == "timing":
        print(json.dumps(timing_worker(size, args.iters, args.warmup, precision, args.loops, repo)))
    elif args.worker == "memory":
        print(json.dumps(memory_worker(size, args.loops[0], precision, repo)))
    else:
        needed = ("models/cycle_gan_model.py", "options/train_options.py")
        if repo and not all((Path(repo) / name).is_file() for name in needed):
            raise SystemExit(
                f"--authors-code {repo}: not a pytorch-CycleGAN-and-pix2pix checkout (needs {', '.join(needed)})"
            )
        compare(args, argv)


def compare(args, argv: list[str]) -> None:
    common = ["--iters", str(args.iters), "--warmup", str(args.warmup)]
    common += ["--authors-code", args.authors_code] if args.authors_code else []
    flops = {
        size: in_subprocess("genlab.bench.cyclegan", "--worker", "flops", "--sizes", str(size)) for size in args.sizes
    }
    rows = []
    for size in args.sizes:
        for precision in args.precision:
            loops = ["lightning"] + ([] if args.no_plain else ["plain"])
            loops += ["authors"] if args.authors_code and precision == "32-true" else []  # their code is fp32
            where = ["--sizes", str(size), "--precision", precision]
            timed = in_subprocess("genlab.bench.cyclegan", "--worker", "timing", *where, *common, "--loops", *loops)
            times = timed.pop("times")
            for loop in loops:
                peak = in_subprocess("genlab.bench.cyclegan", "--worker", "memory", *where, *common, "--loops", loop)
                rows.append({**timed, "loop": loop, "all": times[loop], "peak_gib": peak})
    report(rows, flops, args, argv)


def report(rows: list[dict], flops: dict[int, float], args, argv: list[str]) -> None:
    first = rows[0]
    print(
        f"\nCycleGAN training iteration (G_A, G_B, D_A, D_B; batch 1; ResNet-9 {first['params_g']:.3f} M, "
        f"PatchGAN {first['params_d']:.3f} M), {first['threads']} threads; median of {args.iters} iterations "
        f"after {args.warmup} warm-up, the loops of a (size, precision) interleaved in one process"
    )
    authors = {r["size"]: statistics.median(r["all"]) for r in rows if r["loop"] == "authors"}
    print(
        f"{'px':>5}  {'loop':<10}{'precision':<12}{'s/iter':>8}{'GFLOP/s':>9}{'peak mem':>10}"
        f"{'vs authors here':>17}{'authors quoted':>16}{'vs quoted':>12}"
    )
    for r in rows:
        t, size = statistics.median(r["all"]), r["size"]
        here = f"{authors[size] / t:.2f}x" if size in authors and r["loop"] != "authors" else "-"
        quoted, versus = "-", "-"
        if size in QUOTED:
            low, high, _ = QUOTED[size]
            quoted, versus = f"{low:.1f}-{high:.1f} s", f"{low / t:.2f}-{high / t:.2f}x"
        print(
            f"{size:>5}  {r['loop']:<10}{r['precision']:<12}{t:>8.3f}{flops[size] / 1e9 / t:>9.0f}"
            f"{r['peak_gib']:>6.2f} GiB{here:>17}{quoted:>16}{versus:>12}"
        )
    for r in rows:
        print(f"{r['size']} px {r['loop']} {r['precision']} iterations (s): " + " ".join(f"{t:.3f}" for t in r["all"]))
    rates = gemm_rate()
    print(
        f"this CPU's 4096x4096 matrix multiply: {rates['float32']:.0f} GFLOP/s fp32, "
        f"{rates['bfloat16']:.0f} GFLOP/s bf16 ({first['threads']} threads)"
    )
    for size in args.sizes:
        gflop = flops[size] / 1e9
        line = f"{size} px: {gflop:.0f} GFLOP per iteration (PyTorch's FLOP counter): >= {gflop / rates['float32']:.2f} s in fp32 at that rate"
        if size in QUOTED:
            low, high, rss = QUOTED[size]
            line += f"; the quoted {low}-{high} s ({rss} GiB) imply {gflop / high:.0f}-{gflop / low:.0f} GFLOP/s"
        print(line)
    print("vs authors here / vs quoted = their s/iter over ours (> 1: genlab is faster)")
    print("reproduce: python -m genlab.bench cyclegan " + " ".join(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
