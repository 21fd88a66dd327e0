"""slamp.data: the datasets of the paper, exported from ``notebooks/02_data`` (this file only re-exports).

Every dataset yields clips ``(T, C, H, W)`` float32 in [0, 1] (batches ``(B, T, C, H, W)``):

* ``StochasticMovingMNIST`` (an endless, seeded training stream) and ``MovingMNISTTestSet`` (a fixed
  test set saved to a file), from MNIST digits read offline by ``load_digits``;
* ``KTH``, ``BAIR``, ``KITTI`` and ``Cityscapes``, read from the layouts described in ``data/README.md``.

``slamp prepare <dataset>`` writes prepared data into one data folder (``data_home()``: ``$SLAMP_DATA``,
else the user cache folder, else a clone's ``data/``), which every loader searches (``data_roots()``).
Problems with data on disk raise ``DataError`` with the path and the expected layout.
"""
from slamp.data.bair import BAIR, prepare_bair
from slamp.data.cityscapes import Cityscapes, prepare_cityscapes
from slamp.data.files import DataError, MissingDataError, ToolMissingError, data_home, data_roots
from slamp.data.kitti import KITTI, prepare_kitti
from slamp.data.kth import KTH, prepare_kth
from slamp.data.mnist import Digits, load_digits, load_mnist_digits, prepare_mnist
from slamp.data.moving_mnist import MovingMNISTTestSet, StochasticMovingMNIST, sample_sequence
from slamp.data.video import Video, VideoClips


__all__ = ["DataError", "MissingDataError", "ToolMissingError", "data_home", "data_roots", "Digits",
           "load_digits", "load_mnist_digits", "prepare_mnist", "MovingMNISTTestSet", "StochasticMovingMNIST",
           "sample_sequence", "Video", "VideoClips", "KTH", "prepare_kth", "BAIR", "prepare_bair",
           "KITTI", "prepare_kitti", "Cityscapes", "prepare_cityscapes"]
