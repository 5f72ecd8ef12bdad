"""LightningDataModules for the tasks: bundled offline data and loaders for your own.

- ``DigitsData``: scikit-learn's handwritten digits (bundled), 32 x 32, fixed seeded split.
- ``ImageFolderData``: ``root/{train,val[,test]}/<class>/`` image folders with timm's transforms.
- ``ShapesData``: synthetic detection scenes on scikit-image's photos (bundled), seeded, 128 x 128.
- ``CocoData``: COCO instances JSON + image folders for detection.
- ``PhotosData``: denoising / JPEG deartifacting on scikit-image's photos (bundled), benchmark test split.
- ``ImageFolderRestorationData``: ``root/{train,val[,test]}/`` clean images, or degraded/clean pairs.
- ``Degradation``: Gaussian noise or JPEG compression, what a restoration model undoes.
- ``TrackletsData``: synthetic video re-ID tracklets of walking people (bundled), seeded, 64 x 32.
- ``MarsData``, ``ILidsVidData``, ``Prid2011Data``: the video re-ID benchmarks in their published layouts;
  ``TrackletFolderData``: ``root/{train,query,gallery}/<pid>_c<camid>_*/`` folders of frames.

The classification and detection ones set ``num_classes`` and ``labels`` at construction (the
detection ones also ``category_ids``), for LightningCLI to link into the model; the restoration
ones take the model's ``degradation`` and ``channels`` when built without them.
"""
from .coco import CocoData
from .degradation import Degradation
from .digits import DigitsData
from .image_folder import ImageFolderData
from .photos import PhotosData
from .reid import ILidsVidData, MarsData, Prid2011Data, ReIDData, TrackletFolderData
from .restoration_folder import ImageFolderRestorationData
from .shapes import ShapesData
from .tracklets import TrackletsData

__all__ = [
    "CocoData",
    "Degradation",
    "DigitsData",
    "ImageFolderData",
    "ILidsVidData",
    "ImageFolderRestorationData",
    "MarsData",
    "PhotosData",
    "Prid2011Data",
    "ReIDData",
    "ShapesData",
    "TrackletFolderData",
    "TrackletsData",
]
