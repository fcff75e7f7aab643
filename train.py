"""Train a genlab model: ``python train.py model=dcgan data=digits`` (see README.md)."""

import hydra
from omegaconf import DictConfig

from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Imported here, not above: a multirun's launcher process only composes and dispatches trials, and
    # torch + Lightning cost it seconds of CPU (per sweep) that its trials then wait for.
    import genlab.train

    with reported():
        return genlab.train.run(cfg)


if __name__ == "__main__":
    main()
