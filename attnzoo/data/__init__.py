"""LightningDataModules for the tasks: bundled offline data and loaders for your own.

- ``DigitsData``: scikit-learn's handwritten digits (bundled), 32 x 32, fixed seeded split.
- ``ImageFolderData``: ``root/{train,val[,test]}/<class>/`` image folders with timm's transforms.

Both set ``num_classes`` and ``labels`` at construction, for LightningCLI to link into the model.
"""
from .digits import DigitsData
from .image_folder import ImageFolderData

__all__ = ["DigitsData", "ImageFolderData"]
