"""Score a checkpoint's samples, or two image folders: ``python evaluate.py ckpt=PATH metrics='[fid,kid]'``."""

import hydra
from omegaconf import DictConfig

import genlab.evaluate
from genlab.errors import reported


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    with reported():
        genlab.evaluate.run(cfg)


if __name__ == "__main__":
    main()
