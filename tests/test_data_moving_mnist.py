"""slamp.data.moving_mnist: bounces, rendering, the seeded training stream and the frozen test set
(notebook 02_data). Synthetic 28x28 "digits" keep these tests independent of any download."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slamp.data.files import DataError, MissingDataError
from slamp.data.mnist import Digits
from slamp.data.moving_mnist import (MovingMNISTTestSet, StochasticMovingMNIST, advance, bounce_trajectory,
                                     random_velocity, render_digits, sample_sequence)

HIGH = (36, 36)  # a 28x28 digit in a 64x64 frame


def synthetic_digits(n=20, seed=0) -> Digits:
    """Random blobs with MNIST's shape and dtype: 28x28 uint8, ink inside a 20x20 box."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 4:24, 4:24] = rng.integers(0, 256, size=(n, 20, 20)) * (rng.random((n, 20, 20)) < 0.3)
    return Digits(images, np.arange(n) % 10, "synthetic", is_mnist=False)


DIGITS = synthetic_digits()


def test_a_wall_hit_mid_frame_reflects_at_the_exact_time():
    # Row 34 moving down at 4 px/frame reaches the wall (36) after half a frame.
    position, velocity, bounced = advance([34, 10], [4, 0], HIGH, stochastic=False)
    assert bounced and velocity == [-4.0, 0.0] and position == [34.0, 10.0]
    rng = np.random.default_rng(1)
    for _ in range(200):
        position, velocity, bounced = advance([34, 10], [4, 0], HIGH, rng)
        assert bounced and velocity[0] <= 0  # the new velocity leaves the bottom wall ...
        assert position == pytest.approx([36 + 0.5 * velocity[0], 10 + 0.5 * velocity[1]])  # ... for half a frame


def test_corner_hits_turn_both_components_and_no_move_means_no_bounce():
    position, velocity, bounced = advance([35, 35], [2, 2], HIGH, stochastic=False)
    assert bounced and velocity == [-2.0, -2.0] and position == [35.0, 35.0]
    assert advance([0, 0], [0, 0], HIGH, np.random.default_rng(0)) == ([0.0, 0.0], [0.0, 0.0], False)


@pytest.mark.parametrize("stochastic", [True, False])
def test_trajectories_stay_inside_and_change_velocity_only_at_bounces(stochastic):
    rng = np.random.default_rng(2)
    for _ in range(100):
        start = rng.integers(0, 37, size=2).tolist()
        positions, velocities, bounces = bounce_trajectory(start, random_velocity(rng, 4), 30, HIGH, rng,
                                                           stochastic=stochastic)
        assert positions.shape == (30, 2) and velocities.shape == (30, 2) and bounces.shape == (30,)
        assert positions.min() >= 0 and positions.max() <= 36 and not bounces[0]
        changed = (velocities[1:] != velocities[:-1]).any(axis=1)
        assert not (changed & ~bounces[1:]).any()
        assert np.abs(velocities).max() <= 4
        if not stochastic:
            assert (np.abs(velocities) == np.abs(velocities[0])).all()


def test_continuing_from_a_frame_reproduces_the_path_until_the_next_bounce():
    rng = np.random.default_rng(3)
    positions, velocities, bounces = bounce_trajectory([5, 5], [3, -2], 40, HIGH, rng)
    t = 4
    rest, _, rest_bounces = bounce_trajectory(positions[t], velocities[t], 20, HIGH, np.random.default_rng(99))
    first = 1 + int(np.argmax(rest_bounces[1:])) if rest_bounces[1:].any() else 20
    assert np.allclose(rest[:first], positions[t:t + first])


def test_stochastic_needs_a_generator_and_velocities_cover_the_range():
    with pytest.raises(ValueError, match="random generator"):
        bounce_trajectory([0, 0], [1, 1], 5, HIGH)
    drawn = np.array([random_velocity(np.random.default_rng(k), 4) for k in range(500)])
    assert set(np.unique(drawn)) == set(range(-4, 5))


def test_rendering_adds_overlapping_digits_and_clips_at_255():
    digits = np.full((2, 28, 28), 200, np.uint8)
    frames = render_digits(digits, np.array([[[0, 0]], [[10.4, 9.6]]]))  # rounded to (10, 10)
    assert frames.shape == (1, 64, 64) and frames.dtype == np.uint8
    assert frames[0, 5, 5] == 200 and frames[0, 15, 15] == 255 and frames[0, 37, 37] == 200 and frames[0, 38, 38] == 0
    with pytest.raises(ValueError, match="leaves the 64x64 frame"):
        render_digits(digits[:1], np.array([[[37, 0]]]))
    with pytest.raises(ValueError, match="positions must be"):
        render_digits(digits, np.zeros((3, 1, 2)))


@pytest.mark.parametrize("num_digits", [1, 2, 3])
def test_sequences_have_the_requested_shape_and_draw_the_digits(num_digits):
    sample = sample_sequence(DIGITS.images, 12, np.random.default_rng(4), num_digits=num_digits)
    assert sample.frames.shape == (12, 64, 64) and sample.frames.dtype == np.uint8
    assert sample.positions.shape == (num_digits, 12, 2) and sample.bounces.shape == (num_digits, 12)
    assert sample.digit_indices.shape == (num_digits,)
    redrawn = render_digits(DIGITS.images[sample.digit_indices], sample.positions)
    assert np.array_equal(redrawn, sample.frames)


def test_the_stream_is_reproducible_from_its_seed_and_separates_workers_epochs_shards():
    stream = StochasticMovingMNIST(DIGITS, n_frames=6, seed=5)
    first = [stream.sample(k).frames for k in range(3)]
    assert all(np.array_equal(a, StochasticMovingMNIST(DIGITS, n_frames=6, seed=5).sample(k).frames)
               for k, a in enumerate(first))
    assert not np.array_equal(first[0], first[1])
    others = [StochasticMovingMNIST(DIGITS, n_frames=6, seed=6).sample(0), stream.sample(0, worker=1),
              StochasticMovingMNIST(DIGITS, n_frames=6, seed=5, shard=1).sample(0)]
    assert all(not np.array_equal(first[0], other.frames) for other in others)
    stream.set_epoch(1)
    assert not np.array_equal(first[0], stream.sample(0).frames)
    video = next(iter(stream))
    assert video.shape == (6, 1, 64, 64) and video.dtype == torch.float32 and 0 <= video.min() <= video.max() <= 1


def test_dataloader_workers_draw_different_sequences_reproducibly():
    stream = StochasticMovingMNIST(DIGITS, n_frames=4, num_digits=1, seed=7)

    def first_batches():
        loader = DataLoader(stream, batch_size=2, num_workers=2)
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) == 4:
                return batches

    batches = first_batches()
    assert all(b.shape == (2, 4, 1, 64, 64) for b in batches)
    # Batches come from worker 0, 1, 0, 1: each worker's stream, in order, as sample() gives it.
    for number, batch in enumerate(batches):
        worker, offset = number % 2, 2 * (number // 2)
        expected = torch.stack([torch.from_numpy(stream.sample(offset + i, worker).frames) for i in range(2)])
        assert torch.equal(batch[:, :, 0], expected.float() / 255)
    assert not torch.equal(batches[0], batches[1])
    assert all(torch.equal(a, b) for a, b in zip(batches, first_batches()))


def test_invalid_settings_are_rejected():
    for bad in ({"n_frames": 0}, {"num_digits": 0}, {"max_speed": -1}, {"seed": -1}):
        with pytest.raises(ValueError, match="need n_frames"):
            StochasticMovingMNIST(DIGITS, **bad)
    with pytest.raises(ValueError, match="do not fit"):
        sample_sequence(DIGITS.images, 3, np.random.default_rng(0), frame_size=20)


def test_the_test_set_is_saved_once_and_reloaded_bit_for_bit(tmp_path):
    test_set = MovingMNISTTestSet.generate(DIGITS, num_sequences=6, n_frames=25, seed=42)
    assert test_set.sequences.shape == (6, 25, 64, 64) and test_set.sequences.dtype == np.uint8
    path = test_set.save(tmp_path / "test.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["test.npz"]  # nothing half-written left behind
    reloaded = MovingMNISTTestSet.load(path)
    for key in ("sequences", "positions", "bounces", "digit_indices"):
        before, after = getattr(test_set, key), getattr(reloaded, key)
        assert before.dtype == after.dtype and before.shape == after.shape and np.array_equal(before, after)
    assert reloaded.config == test_set.config and reloaded.config["digits"] == "synthetic"
    assert len(reloaded) == 6 and reloaded[2].shape == (25, 1, 64, 64)
    assert torch.equal(reloaded[2], torch.from_numpy(test_set.sequences[2]).float()[:, None] / 255)
    # Sequence i depends only on (seed, i): a smaller set is a prefix, another seed another set.
    assert np.array_equal(MovingMNISTTestSet.generate(DIGITS, num_sequences=3, seed=42).sequences, test_set.sequences[:3])
    assert not np.array_equal(MovingMNISTTestSet.generate(DIGITS, num_sequences=3, seed=1).sequences, test_set.sequences[:3])


def test_cached_test_set_loads_what_it_saved_and_refuses_other_settings(tmp_path):
    path = tmp_path / "cached.npz"
    made = MovingMNISTTestSet.cached(path, DIGITS, num_sequences=3, n_frames=8)
    stamp = path.stat().st_mtime_ns
    loaded = MovingMNISTTestSet.cached(path, DIGITS, num_sequences=3, n_frames=8)
    assert path.stat().st_mtime_ns == stamp and np.array_equal(made.sequences, loaded.sequences)
    with pytest.raises(DataError, match="was made with"):
        MovingMNISTTestSet.cached(path, DIGITS, num_sequences=3, n_frames=9)


def test_missing_or_truncated_test_set_files_are_named(tmp_path):
    with pytest.raises(MissingDataError, match="absent.npz"):
        MovingMNISTTestSet.load(tmp_path / "absent.npz")
    path = MovingMNISTTestSet.generate(DIGITS, num_sequences=2, n_frames=5).save(tmp_path / "t.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="t.npz"):
        MovingMNISTTestSet.load(path)


def test_the_package_exports_every_dataset():
    import slamp.data

    assert all(hasattr(slamp.data, name) for name in slamp.data.__all__)
    assert {"StochasticMovingMNIST", "MovingMNISTTestSet", "KTH", "BAIR", "KITTI", "Cityscapes"} <= set(slamp.data.__all__)
