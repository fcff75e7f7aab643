"""Sample images from a trained genlab checkpoint: ``python generate.py ckpt=PATH n=64 out=DIR``."""

import hydra
from omegaconf import DictConfig

import genlab.generate
from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="generate")
def main(cfg: DictConfig) -> None:
    with reported():
        genlab.generate.run(cfg)


if __name__ == "__main__":
    main()
