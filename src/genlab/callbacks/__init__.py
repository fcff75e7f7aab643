from genlab.callbacks.images import ImagePreview, SampleTable
from genlab.callbacks.metrics import BestCheckpoint, SampleQuality
from genlab.callbacks.progress import ImagesSeen

__all__ = ["BestCheckpoint", "ImagePreview", "ImagesSeen", "SampleQuality", "SampleTable"]
