"""Translate images with a trained model: ``python translate.py ckpt=PATH input=FILE_OR_DIR direction=a2b out=DIR``."""

import hydra
from omegaconf import DictConfig

import genlab.translate
from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="translate")
def main(cfg: DictConfig) -> None:
    with reported():
        genlab.translate.run(cfg)


if __name__ == "__main__":
    main()
