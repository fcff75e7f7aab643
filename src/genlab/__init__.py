"""genlab: PyTorch Lightning + Hydra experiments for image generation and restoration."""

from omegaconf import OmegaConf

__version__ = "0.1.0"


def _resnet_blocks(image_size) -> int:
    from genlab.networks.resnet import paper_n_blocks

    return paper_n_blocks(image_size)


# Config arithmetic that YAML cannot spell; registered on import, before any config is resolved.
OmegaConf.register_new_resolver("resnet_blocks", _resnet_blocks, replace=True)
