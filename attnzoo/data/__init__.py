"""LightningDataModules for the tasks: bundled offline data and loaders for your own.

- ``DigitsData``: scikit-learn's handwritten digits (bundled), 32 x 32, fixed seeded split.
- ``ImageFolderData``: ``root/{train,val[,test]}/<class>/`` image folders with timm's transforms.
- ``ShapesData``: synthetic detection scenes on scikit-image's photos (bundled), seeded, 128 x 128.
- ``CocoData``: COCO instances JSON + image folders for detection.

All set ``num_classes`` and ``labels`` at construction (the detection ones also
``category_ids``), for LightningCLI to link into the model.
"""
from .coco import CocoData
from .digits import DigitsData
from .image_folder import ImageFolderData
from .shapes import ShapesData

__all__ = ["CocoData", "DigitsData", "ImageFolderData", "ShapesData"]
