"""CycleGAN training speed on this machine: seconds per iteration (G_A, G_B, D_A, D_B updated once
on one A and one B image) and peak memory, at the paper's architecture (ResNet-9 generators,
70x70 PatchGANs, ngf = ndf = 64, batch 1), next to the authors' implementation on 2 idle cores.

    python -m genlab.bench cyclegan [--sizes 128 256] [--iters 10] [--warmup 2] [--no-plain]
    python -m genlab.bench cyclegan --quick          # 128 px, 2 iterations: checks that it runs

Each (size, loop) runs in a fresh process, so its peak RSS is its own. ``lightning`` iterations go
through the real LightningModule ``training_step`` under a Lightning ``Trainer`` (no logger,
checkpoints or validation); ``plain`` runs the same networks and losses in the reference code's
plain PyTorch loop, which shows what Lightning adds. One iteration is the time from one batch
start to the next.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# The authors' PyTorch code (junyanz/pytorch-CycleGAN-and-pix2pix, resnet_9blocks, batch 1) timed
# on 2 idle cores of a machine like ours: (s/iteration low, high, peak RSS GiB).
REFERENCE = {128: (1.9, 2.1, 1.9), 256: (7.3, 8.5, 4.0)}


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


def plain_loop(model, datamodule, n: int, precision: str) -> list[float]:
    """The reference's iteration as a plain PyTorch loop (under CPU autocast for ``bf16-mixed``):
    what the Lightning step costs on top of the arithmetic."""
    import torch

    opt_g, opt_d = model.configure_optimizers()[0]
    datamodule.setup("fit")
    stamps = []
    for i, batch in enumerate(datamodule.train_dataloader()):
        if i == n:
            break
        stamps.append(time.perf_counter())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            plain_step(model, batch["a"], batch["b"], opt_g, opt_d)
    stamps.append(time.perf_counter())
    return stamps


def iteration_flops(size: int) -> float:
    """Floating-point operations of one iteration, counted by PyTorch (in the parent process, so
    that the workers' peak memory is their own)."""
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


def build(size: int, n_train: int):
    """(datamodule, model) of ``model=cyclegan`` (the paper's networks) on ``n_train`` shapes at ``size`` px."""
    import lightning as L
    from hydra.utils import instantiate

    from genlab.config import compose_train
    from genlab.train import quiet_known_warnings

    quiet_known_warnings()
    overrides = ["model=cyclegan", "model.generator.n_blocks=9", "data=shapes_unpaired", f"data.image_size={size}"]
    overrides += ["data.batch_size=1"]  # the authors timed resnet_9blocks at 128 px too
    cfg = compose_train(
        [*overrides, f"data.n_train={n_train}", "data.n_val=1"], output_dir=tempfile.mkdtemp(prefix="genlab-bench-")
    )
    L.seed_everything(0, verbose=False)
    return instantiate(cfg.data), instantiate(cfg.model, _recursive_=False, _convert_="all")


def worker(size: int, iters: int, warmup: int, loop: str, precision: str) -> dict:
    import torch

    datamodule, model = build(size, n_train=warmup + iters + 1)
    stamps: list[float] = []
    if loop == "plain":
        stamps = plain_loop(model, datamodule, warmup + iters, precision)
    else:
        fit(model, datamodule, warmup + iters, stamps, precision)
    deltas = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]
    return {
        "size": size,
        "loop": loop,
        "precision": precision,
        "s_per_iter": statistics.median(deltas),
        "all": deltas,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB on Linux
        "threads": torch.get_num_threads(),
        "params_g": sum(p.numel() for p in model.g_a.parameters()) / 1e6,
        "params_d": sum(p.numel() for p in model.d_a.parameters()) / 1e6,
    }


def fit(model, datamodule, n: int, stamps: list[float], precision: str) -> None:
    import lightning as L

    class Stamp(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            stamps.append(time.perf_counter())

        def on_train_epoch_end(self, *args) -> None:
            stamps.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        precision=precision,
        max_epochs=1,
        limit_train_batches=n,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Stamp()],
    )
    trainer.fit(model, datamodule=datamodule)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench cyclegan")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="crop sizes in px")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch loop")
    parser.add_argument("--quick", action="store_true", help="128 px, 1 + 2 iterations, Lightning only")
    parser.add_argument(
        "--precision", nargs="+", default=["32-true"], help="Lightning precisions to time, e.g. 32-true bf16-mixed"
    )
    parser.add_argument("--worker", choices=["lightning", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.iters, args.warmup, args.no_plain = [128], 2, 1, True
    if args.worker:
        print(json.dumps(worker(args.sizes[0], args.iters, args.warmup, args.worker, args.precision[0])))
        return

    flops = {size: iteration_flops(size) for size in args.sizes}
    rows = []
    for size in args.sizes:
        for precision in args.precision:
            for loop in ["lightning"] + ([] if args.no_plain else ["plain"]):
                cmd = [sys.executable, "-m", "genlab.bench.cyclegan", "--worker", loop, "--sizes", str(size)]
                cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup), "--precision", precision]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"benchmark at {size} px ({loop}, {precision}) failed:\n{done.stderr[-3000:]}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    first = rows[0]
    print(
        f"\nCycleGAN training iteration (G_A, G_B, D_A, D_B; batch 1; ResNet-9 {first['params_g']:.3f} M, "
        f"PatchGAN {first['params_d']:.3f} M), {first['threads']} threads, "
        f"median of {args.iters} after {args.warmup} warm-up, one process per row"
    )
    header = (
        f"{'px':>5}  {'loop':<10}{'precision':<11}{'s/iter':>9}{'GFLOP/s':>9}{'peak RSS':>11}"
        f"{'authors s/iter':>17}{'authors RSS':>13}{'speed-up':>13}"
    )
    print(header)
    for row in rows:
        t, size = row["s_per_iter"], row["size"]
        ref_cols = ["-", "-", "-"]
        if size in REFERENCE:
            low, high, rss = REFERENCE[size]
            ref_cols = [f"{low:.1f}-{high:.1f}", f"{rss:.1f} GiB", f"{low / t:.2f}-{high / t:.2f}x"]
        rss = f"{row['peak_rss_gib']:.2f} GiB"
        print(
            f"{size:>5}  {row['loop']:<10}{row['precision']:<11}{t:>9.3f}{flops[size] / 1e9 / t:>9.0f}{rss:>11}"
            f"{ref_cols[0]:>17}{ref_cols[1]:>13}{ref_cols[2]:>13}"
        )
    for row in rows:
        print(
            f"{row['size']} px {row['loop']} {row['precision']} iterations (s): "
            + " ".join(f"{t:.3f}" for t in row["all"])
        )
    rates = gemm_rate()
    print(
        f"this CPU's 4096x4096 matrix multiply: {rates['float32']:.0f} GFLOP/s fp32, "
        f"{rates['bfloat16']:.0f} GFLOP/s bf16 ({first['threads']} threads)"
    )
    for size in args.sizes:
        gflop = flops[size] / 1e9
        line = f"{size} px: {gflop:.0f} GFLOP per iteration (PyTorch's FLOP counter), >= {gflop / rates['float32']:.2f} s in fp32 at that rate"
        if size in REFERENCE:
            low, high, _ = REFERENCE[size]
            line += f"; the authors' times imply {gflop / high:.0f}-{gflop / low:.0f} GFLOP/s"
        print(line)
    print("speed-up = authors' s/iter / ours (> 1: genlab is faster). Command: python -m genlab.bench cyclegan")


if __name__ == "__main__":
    main(sys.argv[1:])
