"""DCGAN on digits: framework overhead (train.py's Lightning Trainer vs a plain PyTorch loop of the
same networks and losses, interleaved iteration by iteration), what channels-last weights buy (the
plain loop in both layouts) and sample quality (class coverage).

    python -m genlab.bench dcgan [--epochs 8] [--override KEY=VALUE ...]   # speed
    python -m genlab.bench dcgan --samples-of CKPT [--n 1000]  # class coverage of a trained model
"""

from __future__ import annotations

import statistics
import tempfile

import lightning as L
import torch
from hydra.utils import instantiate

from genlab import train
from genlab.bench import argument_parser
from genlab.bench.interleave import Interleave, endless
from genlab.config import compose_train

WARMUP = 5  # iteration pairs skipped at the start (allocator, first-touch costs)


class PlainLoop:
    """The same networks, losses, optimizers and data in a hand-written PyTorch loop; each call of
    :meth:`step` is one iteration (the next batch, a D step, a G step). ``channels_last``: weights in
    that layout, as train.py's ChannelsLast callback stores them."""

    def __init__(self, cfg, channels_last: bool):
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        self.batches = endless(datamodule.train_dataloader)
        self.model = instantiate(cfg.model, _recursive_=False, _convert_="all")
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.opt_g, self.opt_d = self.model.configure_optimizers()

    def step(self) -> None:
        real = next(self.batches)[0]
        model, G, D = self.model, self.model.generator, self.model.discriminator
        fake = G(torch.randn(real.shape[0], G.latent_dim))
        loss_d = model.d_loss(D(real), D(fake.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        D.requires_grad_(False)
        loss_g = model.g_loss(D(fake))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        D.requires_grad_(True)


def interleaved_times(cfg, epochs: int) -> dict[str, list[float]]:
    """Seconds per iteration, ``lightning``, ``plain`` and ``plain NCHW`` (item i of each: one triple):
    train.py's own Trainer (``genlab.train.build``: its callbacks, loggers and checkpoint IO)
    interleaved with the plain loop in train.py's weight layout and in PyTorch's default one."""
    L.seed_everything(cfg.seed, verbose=False)
    layout = cfg.callbacks.get("channels_last")
    as_train = layout is not None and instantiate(layout).applies_on(torch.device("cpu"))
    loops = {"plain": PlainLoop(cfg, channels_last=as_train), "plain NCHW": PlainLoop(cfg, channels_last=False)}
    interleave = Interleave({name: loop.step for name, loop in loops.items()})
    datamodule, model, trainer = train.build(cfg, [interleave], max_epochs=epochs, enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)
    return {name: seconds[WARMUP:] for name, seconds in interleave.times.items()}


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
    parser = argument_parser("dcgan", __doc__)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of 25 iteration pairs")
    parser.add_argument("--samples-of", metavar="CKPT", help="instead: class coverage of a trained checkpoint")
    parser.add_argument("--n", type=int, default=1000, help="samples for --samples-of")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="train.py override, repeatable"
    )
    args = parser.parse_args(argv)
    if args.samples_of:
        class_coverage(args.samples_of, args.n)
        return

    cfg = compose_train(["model=dcgan", "data=digits", "trainer=cpu", *args.override], output_dir=tempfile.mkdtemp())
    times = interleaved_times(cfg, args.epochs)
    print(
        f"\nDCGAN digits {cfg.data.image_size}px, batch {cfg.data.batch_size}, {torch.get_num_threads()} threads: "
        f"{len(times['lightning'])} Lightning iterations, each followed by one iteration of each plain loop"
    )
    print(f"{'loop':<12}{'median s/iter':>15}{'mean s/iter':>13}")
    for name, t in times.items():
        print(f"{name:<12}{statistics.median(t):>15.4f}{statistics.fmean(t):>13.4f}")
    for label, (a, b) in {"overhead": ("lightning", "plain"), "layout": ("plain", "plain NCHW")}.items():
        ratios = sorted(x / y - 1 for x, y in zip(times[a], times[b]))
        quartiles = statistics.quantiles(ratios, n=4)
        means = statistics.fmean(times[a]) / statistics.fmean(times[b]) - 1
        print(
            f"{label:<12}{100 * statistics.median(ratios):+.1f}% ({a} vs {b}: median of per-iteration ratios; "
            f"interquartile {100 * quartiles[0]:+.1f}% to {100 * quartiles[2]:+.1f}%), {100 * means:+.1f}% on means"
        )
    print("reproduce: python -m genlab.bench dcgan " + " ".join(argv))
