"""genlab: PyTorch Lightning + Hydra experiments for image generation and restoration."""

__version__ = "0.1.0"
