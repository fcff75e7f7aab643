"""Channels-last weights against PyTorch's NCHW layout: seconds per training batch of CPU recipes.

    python -m genlab.bench layout [--recipes default cyclegan_shapes ...] [--batches 30] [--repeats 2]

Each recipe trains ``--batches`` batches through train.py's own Trainer (``genlab.train.build``) with
``callbacks.channels_last.enabled`` false, then true, ``--repeats`` times alternating, so that a machine
changing speed slows both alike. Previews, health checks, metrics and checkpoints are off (they are not
batch costs); the first 3 batches of each run are left out (allocator, first-touch costs).
"""

from __future__ import annotations

import statistics
import tempfile
import time

from genlab.bench import argument_parser

# name -> train.py overrides: the recipes a CPU user runs, every family with a convolution in it.
RECIPES = {
    "default": [],
    "cyclegan_shapes": ["experiment=cyclegan_shapes"],
    "stylegan2_shapes": ["experiment=stylegan2_shapes"],
    "vae_digits": ["experiment=vae_digits"],
    "vqvae_digits_coarse": ["experiment=vqvae_digits_coarse"],
    "vaegan_digits": ["experiment=vaegan_digits"],
    "vqgan_digits": ["experiment=vqgan_digits"],
    "denoise_photos": ["experiment=denoise_photos"],
    "inpaint_photos": ["experiment=inpaint_photos"],
    "sr_photos": ["experiment=sr_photos"],
}
WARMUP = 3
QUIET = [
    "trainer=cpu",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "+trainer.enable_checkpointing=false",
    "+trainer.limit_val_batches=0",
    *(
        f"callbacks.{name}=null"
        for name in (
            "progress_bar",
            "sample_quality",
            "health",
            "image_preview",
            "last_checkpoint",
            "periodic_checkpoint",
        )
    ),
]


def seconds_per_batch(overrides: list[str], channels_last: bool, batches: int) -> float:
    """Median seconds from one training batch's start to the next's, over ``batches`` batches."""
    import lightning as L

    from genlab import train
    from genlab.config import compose_train

    class Clock(L.Callback):
        def __init__(self):
            self.starts: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.starts.append(time.perf_counter())

    cfg = compose_train(
        [*QUIET, f"callbacks.channels_last.enabled={channels_last}", *overrides], output_dir=tempfile.mkdtemp()
    )
    L.seed_everything(cfg.seed, verbose=False)
    clock = Clock()
    datamodule, model, trainer = train.build(cfg, [clock], max_epochs=1, max_steps=-1, limit_train_batches=batches)
    trainer.fit(model, datamodule=datamodule)
    starts = clock.starts[WARMUP:]
    return statistics.median(b - a for a, b in zip(starts, starts[1:]))


def main(argv: list[str]) -> None:
    parser = argument_parser("layout", __doc__)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES), metavar="RECIPE")
    parser.add_argument("--batches", type=int, default=30, help="training batches per run")
    parser.add_argument("--repeats", type=int, default=2, help="NCHW / channels-last run pairs per recipe")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="train.py override for every run"
    )
    args = parser.parse_args(argv)
    if args.batches < WARMUP + 3:
        parser.error(f"--batches must be at least {WARMUP + 3} (the first {WARMUP} are warm-up)")

    import torch

    rows = []
    for name in args.recipes:
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for channels_last in (False, True):
                runs[channels_last].append(
                    seconds_per_batch(RECIPES[name] + args.override, channels_last, args.batches)
                )
        rows.append((name, statistics.fmean(runs[False]), statistics.fmean(runs[True])))

    print(f"\nseconds per training batch, {torch.get_num_threads()} threads, mean of {args.repeats} runs each")
    print(f"{'recipe':<22}{'NCHW':>10}{'channels-last':>15}{'ratio':>8}")
    for name, nchw, channels_last in rows:
        print(f"{name:<22}{nchw:>10.4f}{channels_last:>15.4f}{channels_last / nchw:>8.2f}")
    print("reproduce: python -m genlab.bench layout " + " ".join(argv))
