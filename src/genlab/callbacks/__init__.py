from genlab.callbacks.images import ImagePreview
from genlab.callbacks.metrics import SampleQuality
from genlab.callbacks.progress import ImagesSeen

__all__ = ["ImagePreview", "ImagesSeen", "SampleQuality"]
