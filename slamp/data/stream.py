"""The training stream: clips in an order that is a function of the seed and the position alone,
so a run can stop anywhere and continue exactly, on one process or many; and the validation clips.

Plain Python (05 explains it in a paragraph and checks it in a cell); the clips come from the
dataset's spec (``slamp.registry``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from slamp.config import ConfigError, TrainConfig
from slamp.data.files import to_video_tensor
from slamp.registry import dataset_spec


class TrainingSequences(Dataset):
    """The training stream by position: item ``(epoch, i)`` is the ``i``-th sequence of that epoch,
    ``(T, C, H, W)`` in [0, 1], a function of the seed, ``epoch`` and ``i`` alone.

    ``source`` is a generator such as ``StochasticMovingMNIST`` (``set_epoch``, ``sample``) or a dataset of clips,
    walked through one seeded random permutation per pass, or, when its ``sampling`` is
    ``"video"``, drawn video first (``source.draw``) with a generator seeded by the position."""

    def __init__(self, source, seed: int, sequences_per_epoch: int):
        self.source, self.seed, self.sequences_per_epoch = source, seed, sequences_per_epoch
        self._pass, self._order = None, None

    def __len__(self) -> int:
        return self.sequences_per_epoch

    def __getitem__(self, key) -> torch.Tensor:
        epoch, index = key
        if hasattr(self.source, "set_epoch"):  # a generator (Stochastic Moving MNIST): drawn, not stored
            self.source.set_epoch(epoch)
            return to_video_tensor(self.source.sample(index).frames)
        position = epoch * self.sequences_per_epoch + index  # in the run-long stream
        if getattr(self.source, "sampling", "clip") == "video":  # SRVP: a video uniformly, then a start
            return self.source.draw(np.random.default_rng([self.seed, position]))
        lap, position = divmod(position, len(self.source))
        if lap != self._pass:  # one permutation per pass over the clips, cached per worker
            self._pass, self._order = lap, np.random.default_rng([self.seed, lap]).permutation(len(self.source))
        return self.source[int(self._order[position])]


class RankBatches(Sampler):
    """The batches of one process in one epoch, from update ``start`` on: global batch ``j`` holds
    the sequences ``j*B .. j*B + B-1`` of the epoch, and process ``rank`` of ``world_size`` takes
    the ``rank``-th of ``world_size`` equal slices. Yields lists of keys ``(epoch, i)``."""

    def __init__(self, epoch: int, start: int, epoch_size: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(f"batch_size {batch_size} is the global batch; it must split evenly over "
                              f"{world_size} processes")
        self.epoch, self.start, self.epoch_size = epoch, start, epoch_size
        self.batch_size, self.rank, self.per_rank = batch_size, rank, batch_size // world_size

    def __len__(self) -> int:
        return self.epoch_size - self.start

    def __iter__(self):
        for j in range(self.start, self.epoch_size):
            first = j * self.batch_size + self.rank * self.per_rank
            yield [(self.epoch, i) for i in range(first, first + self.per_rank)]


def training_sequences(config: TrainConfig) -> TrainingSequences:
    """The training stream of ``config``: clips of ``n_past + n_future`` frames."""
    length = config.n_past + config.n_future
    source = dataset_spec(config.dataset).clips("train", length, config.data_root, seed=config.seed,
                                                digits=config.digits)
    return TrainingSequences(source, config.seed, config.epoch_size * config.batch_size)


def epoch_loader(sequences: TrainingSequences, config: TrainConfig, epoch: int, start: int,
                 rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """Batches ``(B / world_size, T, C, H, W)`` of updates ``start .. epoch_size-1`` of ``epoch``."""
    batches = RankBatches(epoch, start, config.epoch_size, config.batch_size, rank, world_size)
    # A private generator: creating a loader must not consume the global RNG, which the model's
    # noise and the scheduled-sampling coins draw from (a resumed run would drift otherwise).
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(sequences, batch_sampler=batches, num_workers=config.workers, pin_memory=pin_memory,
                      generator=generator)


def validation_videos(config: TrainConfig) -> torch.Tensor:
    """Up to ``val_sequences`` held-out clips ``(N, n_past + val_n_future, C, H, W)``: the dataset
    spec's ``val`` split, spread evenly. Moving MNIST: fresh trajectories of SRVP's validation fold
    of the training digits (5%, never in the training stream), so choosing the best model never
    looks at the test set. KTH and BAIR: SRVP's 5% fold of the training videos (never in the
    training stream). KITTI: the training drives, one clip per drive and camera, and Cityscapes:
    the test split, what the public SLAMP code validated on; so ``best.pt`` is chosen on training
    data for KITTI and on test data for Cityscapes (``last.pt`` is neither)."""
    length = config.n_past + config.val_n_future
    seed = config.seed if config.val_seed is None else config.val_seed
    clips = dataset_spec(config.dataset).clips("val", length, config.data_root, seed=seed,
                                               digits=config.digits, count=config.val_sequences)
    keep = np.unique(np.linspace(0, len(clips) - 1, min(config.val_sequences, len(clips))).round().astype(int))
    return torch.stack([clips[int(i)] for i in keep])


__all__ = ["TrainingSequences", "RankBatches", "training_sequences", "epoch_loader", "validation_videos"]
