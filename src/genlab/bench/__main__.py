"""python -m genlab.bench <what> [options]: speed and quality tables, run by hand (not in CI)."""

from __future__ import annotations

import argparse
import importlib

# what -> module with main(argv); each prints a table with the command that reproduces it.
BENCHES = {
    "cyclegan": "genlab.bench.cyclegan",
    "dcgan": "genlab.bench.dcgan",
    "metrics": "genlab.bench.metrics",
    "autoencoders": "genlab.bench.autoencoders",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m genlab.bench", description=__doc__)
    parser.add_argument("what", choices=sorted(BENCHES))
    args, rest = parser.parse_known_args()
    from genlab.train import quiet_known_warnings

    with quiet_known_warnings():
        importlib.import_module(BENCHES[args.what]).main(rest)


if __name__ == "__main__":
    main()
