"""CycleGAN training speed on this machine: seconds per iteration (G_A, G_B, D_A, D_B updated once
on one A and one B image) and peak memory, at the paper's architecture (ResNet-9 generators,
70x70 PatchGANs, ngf = ndf = 64, batch 1), next to the authors' implementation on 2 idle cores.

    python -m genlab.bench cyclegan [--sizes 128 256] [--iters 10] [--warmup 2]
    python -m genlab.bench cyclegan --quick          # 128 px, 2 iterations: checks that it runs

Each size runs in a fresh process, so its peak RSS is its own. Iterations go through the real
LightningModule ``training_step`` under a Lightning ``Trainer`` (no logger, checkpoints or
validation); one iteration is the time from one batch start to the next.
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


def worker(size: int, iters: int, warmup: int) -> dict:
    import lightning as L
    import torch
    from hydra.utils import instantiate

    from genlab.config import compose_train
    from genlab.train import quiet_known_warnings

    quiet_known_warnings()
    cfg = compose_train(
        [
            "model=cyclegan",
            "data=shapes_unpaired",
            f"data.image_size={size}",
            "data.batch_size=1",
            f"data.n_train={warmup + iters + 1}",
            "data.n_val=1",
        ],
        output_dir=tempfile.mkdtemp(prefix="genlab-bench-"),
    )
    L.seed_everything(0, verbose=False)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    stamps: list[float] = []

    class Stamp(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            stamps.append(time.perf_counter())

        def on_train_epoch_end(self, *args) -> None:
            stamps.append(time.perf_counter())

    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=warmup + iters,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Stamp()],
    )
    trainer.fit(model, datamodule=datamodule)
    deltas = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :])]
    return {
        "size": size,
        "s_per_iter": statistics.median(deltas),
        "all": deltas,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB on Linux
        "threads": torch.get_num_threads(),
        "params_g": sum(p.numel() for p in model.g_a.parameters()) / 1e6,
        "params_d": sum(p.numel() for p in model.d_a.parameters()) / 1e6,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench cyclegan")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="crop sizes in px")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--quick", action="store_true", help="128 px, 1 + 2 iterations")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.iters, args.warmup = [128], 2, 1
    if args.worker:
        print(json.dumps(worker(args.sizes[0], args.iters, args.warmup)))
        return

    rows = []
    for size in args.sizes:
        cmd = [sys.executable, "-m", "genlab.bench.cyclegan", "--worker", "--sizes", str(size)]
        cmd += ["--iters", str(args.iters), "--warmup", str(args.warmup)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark at {size} px failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    first = rows[0]
    print(
        f"\nCycleGAN training iteration (G_A, G_B, D_A, D_B; batch 1; ResNet-9 {first['params_g']:.3f} M, "
        f"PatchGAN {first['params_d']:.3f} M), {first['threads']} threads, "
        f"median of {args.iters} after {args.warmup} warm-up"
    )
    print(f"{'px':>5}{'s/iter':>10}{'peak RSS':>11}{'reference s/iter':>19}{'ref RSS':>10}{'speed-up':>12}")
    for row in rows:
        t, size = row["s_per_iter"], row["size"]
        ref_cols = ["-", "-", "-"]
        if size in REFERENCE:
            low, high, rss = REFERENCE[size]
            ref_cols = [f"{low:.1f}-{high:.1f}", f"{rss:.1f} GiB", f"{low / t:.2f}-{high / t:.2f}x"]
        rss = f"{row['peak_rss_gib']:.2f} GiB"
        print(f"{size:>5}{t:>10.3f}{rss:>11}{ref_cols[0]:>19}{ref_cols[1]:>10}{ref_cols[2]:>12}")
    for row in rows:
        print(f"{row['size']} px iterations (s): " + " ".join(f"{t:.3f}" for t in row["all"]))


if __name__ == "__main__":
    main(sys.argv[1:])
