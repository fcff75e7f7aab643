"""DCGAN on digits: framework overhead (Lightning module vs a plain PyTorch loop of the same
networks and losses, interleaved in one run) and sample quality (class coverage).

    python -m genlab.bench dcgan [--epochs 2] [--rounds 3] [--override KEY=VALUE ...]   # speed
    python -m genlab.bench dcgan --samples-of CKPT [--n 1000]  # class coverage of a trained model
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning as L
import torch
from hydra.utils import instantiate

from genlab.config import compose_train
from genlab.train import quiet_known_warnings

WARMUP = 5  # iterations skipped at the start of each run (allocator, first-touch costs)


def mean_iteration(stamps: list[tuple[int, float]]) -> float:
    """Mean time from one batch start to the next, within epochs only: epoch-end work
    (checkpoints, previews) is not an iteration cost and would blur the comparison."""
    deltas = [t1 - t0 for (e0, t0), (e1, t1) in zip(stamps[WARMUP:], stamps[WARMUP + 1 :]) if e0 == e1]
    return statistics.fmean(deltas)


class _BatchTimer(L.Callback):
    def __init__(self):
        self.stamps: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.stamps.append((trainer.current_epoch, time.perf_counter()))


def lightning_iters(cfg, epochs: int) -> float:
    """s/iteration of train.py's own Trainer setup: default callbacks, CSV logger, progress bar."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    timer = _BatchTimer()
    callbacks = [instantiate(c) for c in cfg.callbacks.values()] + [timer]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, max_epochs=epochs, enable_model_summary=False
    )
    trainer.fit(model, datamodule=datamodule)
    return mean_iteration(timer.stamps)


def plain_iters(cfg, epochs: int) -> float:
    """The same networks, losses, optimizers and data in a hand-written PyTorch loop."""
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model = instantiate(cfg.model, _recursive_=False, _convert_="all")
    G, D = model.generator, model.discriminator
    opt_g, opt_d = model.configure_optimizers()
    stamps = []
    for epoch in range(epochs):
        for real, _ in datamodule.train_dataloader():
            stamps.append((epoch, time.perf_counter()))
            z = torch.randn(real.shape[0], G.latent_dim)
            fake = G(z)
            loss_d = model.d_loss(D(real), D(fake.detach()))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            D.requires_grad_(False)
            loss_g = model.g_loss(D(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)
    return mean_iteration(stamps)


def class_coverage(ckpt: str, n: int) -> None:
    """Classify n samples with an RBF SVM fit on all 1,797 real 8x8 digits (held-out accuracy is
    printed too) and print the class histogram: mode collapse shows as empty or dominant classes."""
    import numpy as np
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import cross_val_score
    from sklearn.svm import SVC

    from genlab.checkpoint import load_model

    digits = load_digits()
    svm = SVC(gamma=0.001, C=10.0)
    accuracy = cross_val_score(svm, digits.data, digits.target, cv=5).mean()
    svm.fit(digits.data, digits.target)
    model = load_model(ckpt)
    images = model.sample(n, generator=torch.Generator().manual_seed(0))
    small = F.adaptive_avg_pool2d((images + 1) / 2 * 16, 8).flatten(1).numpy()  # back to 8x8, 0..16
    counts = np.bincount(svm.predict(small), minlength=10)
    print(f"\n{n} samples of {ckpt}, classified by an RBF SVM (5-fold accuracy on real digits {accuracy:.3f})")
    print("class    " + "".join(f"{c:>6d}" for c in range(10)))
    print("share %  " + "".join(f"{100 * k / n:>6.1f}" for k in counts))
    print(f"classes present: {(counts > 0).sum()}/10, smallest share {100 * counts.min() / n:.1f}% (uniform: 10%)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench dcgan")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per round (25 iterations each)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved Lightning/plain rounds")
    parser.add_argument("--samples-of", metavar="CKPT", help="instead: class coverage of a trained checkpoint")
    parser.add_argument("--n", type=int, default=1000, help="samples for --samples-of")
    parser.add_argument("--override", action="append", default=[], help="train.py override, repeatable")
    args = parser.parse_args(argv)
    quiet_known_warnings()
    if args.samples_of:
        class_coverage(args.samples_of, args.n)
        return

    cfg = compose_train(["model=dcgan", "data=digits", "trainer=cpu", *args.override], output_dir=tempfile.mkdtemp())
    times: dict[str, list[float]] = {"lightning": [], "plain": []}
    for _ in range(args.rounds):
        times["lightning"].append(lightning_iters(cfg, args.epochs))
        times["plain"].append(plain_iters(cfg, args.epochs))

    light, plain = (statistics.median(times[k]) for k in ("lightning", "plain"))
    print(
        f"\nDCGAN digits 32px, batch {cfg.data.batch_size}, {torch.get_num_threads()} threads, "
        f"{args.rounds} interleaved rounds x {args.epochs} epochs (median of per-round means)"
    )
    print(f"{'loop':<12}{'s/iter':>10}   all rounds")
    for name, t in (("lightning", light), ("plain", plain)):
        print(f"{name:<12}{t:>10.4f}   " + "  ".join(f"{x:.4f}" for x in times[name]))
    ratios = [a / b - 1 for a, b in zip(times["lightning"], times["plain"])]
    print(
        f"{'overhead':<12}{(light / plain - 1) * 100:>9.1f}%   per round "
        + "  ".join(f"{100 * r:.1f}%" for r in ratios)
        + f"  (median {100 * statistics.median(ratios):.1f}%)"
    )
    print("reproduce: python -m genlab.bench dcgan " + " ".join(argv))
