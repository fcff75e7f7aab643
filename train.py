"""Train a genlab model: ``python train.py model=dcgan data=digits`` (see README.md)."""

import hydra
from omegaconf import DictConfig

import genlab.train
from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    with reported():
        return genlab.train.run(cfg)


if __name__ == "__main__":
    main()
