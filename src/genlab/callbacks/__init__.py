from genlab.callbacks.health import TrainingHealth
from genlab.callbacks.images import ImagePreview, SampleTable
from genlab.callbacks.layout import ChannelsLast
from genlab.callbacks.metrics import BestCheckpoint, SampleQuality
from genlab.callbacks.progress import ImagesSeen
from genlab.callbacks.rng import RngState

__all__ = [
    "BestCheckpoint",
    "ChannelsLast",
    "ImagePreview",
    "ImagesSeen",
    "RngState",
    "SampleQuality",
    "SampleTable",
    "TrainingHealth",
]
