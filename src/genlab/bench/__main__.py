"""python -m genlab.bench <what> [options]: speed and quality tables, run by hand (not in CI)."""

from __future__ import annotations

import argparse
import importlib
import sys

# what -> (module with main(argv), what it measures); each prints a table with the command that reproduces it.
BENCHES = {
    "autoencoders": ("genlab.bench.autoencoders", "VAE, VQ-VAE and prior on digits: held-out NLL, MSE, FID/IS"),
    "cyclegan": ("genlab.bench.cyclegan", "CycleGAN seconds per iteration and memory, beside the authors' code"),
    "dcgan": ("genlab.bench.dcgan", "DCGAN Lightning overhead vs a plain loop; class coverage of samples"),
    "gan_vs_vae": ("genlab.bench.gan_vs_vae", "DCGAN, VAE, VAE-GAN, VQ-VAE, VQGAN on one budget: one table"),
    "layout": ("genlab.bench.layout", "channels-last weights vs NCHW: seconds per batch of the CPU recipes"),
    "metrics": ("genlab.bench.metrics", "Inception feature throughput, cached vs uncached FID"),
    "restoration": ("genlab.bench.restoration", "trained restorers vs OpenCV/scikit-image on held-out photos, s/MP"),
    "stylegan2": ("genlab.bench.stylegan2", "StyleGAN2 seconds per iteration and memory, beside the authors' code"),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m genlab.bench",
        description=__doc__,
        epilog="benches:\n"
        + "\n".join(f"  {what:<14}{summary}" for what, (_, summary) in BENCHES.items())
        + "\n\npython -m genlab.bench <what> --help lists the options of one bench.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=sorted(BENCHES))
    # Only the first word is ours: everything after it, --help included, belongs to that bench.
    what = parser.parse_args(argv[:1]).what
    from genlab.train import quiet_known_warnings

    with quiet_known_warnings():
        importlib.import_module(BENCHES[what][0]).main(argv[1:])


if __name__ == "__main__":
    main()
