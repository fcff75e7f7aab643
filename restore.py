"""Restore images with a trained model: ``python restore.py ckpt=PATH input=FILE_OR_DIR [mask=FILE_OR_DIR] [out=DIR]``."""

import hydra
from omegaconf import DictConfig

import genlab.restore
from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="restore")
def main(cfg: DictConfig) -> None:
    with reported():
        genlab.restore.run(cfg)


if __name__ == "__main__":
    main()
