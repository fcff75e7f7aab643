from genlab.callbacks.images import ImagePreview
from genlab.callbacks.progress import ImagesSeen

__all__ = ["ImagePreview", "ImagesSeen"]
