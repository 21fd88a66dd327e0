"""slamp.data.moving_mnist: bounces, rendering, the seeded training stream and the frozen test set
(notebook 02_data). Synthetic 28x28 "digits" keep these tests independent of any download."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from slamp.data.files import DataError, MissingDataError
from slamp.data.mnist import Digits, load_mnist_digits, locate_mnist, sklearn_digits
from slamp.data.moving_mnist import (
    SRVP_TEST_SET_SHA256,
    MovingMNISTTestSet,
    StochasticMovingMNIST,
    advance,
    bounce_trajectory,
    random_velocity,
    render_digits,
    sample_sequence,
    srvp_sequences,
    srvp_step,
    srvp_trajectory,
)


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
    # One stream for the whole set: a smaller set is a prefix, another seed another set.
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


class CountingRandomState(np.random.RandomState):
    """A RandomState that counts its randint calls."""
    calls = 0

    def randint(self, *args, **kwargs):
        self.calls += 1
        return super().randint(*args, **kwargs)


class AsGenerator:
    """``integers(lo, hi, size)`` of a Generator, answered by scalar ``randint`` calls of a RandomState."""

    def __init__(self, state):
        self.state = state

    def integers(self, low, high, size):
        return np.array([self.state.randint(low, high) for _ in range(size)])


def test_the_srvp_step_bounces_mid_frame_and_draws_only_at_bounces():
    rng = CountingRandomState(0)
    new = np.random.RandomState(0).randint(-4, 5, size=2)  # two draws, row then column
    position, velocity, bounced = srvp_step([34, 10], [4, 1], HIGH, rng)
    assert bounced and rng.calls == 2 and velocity == [-abs(new[0]), new[1]]
    assert position == [36 - abs(new[0]) * 0.5, 10.5 + new[1] * 0.5]  # half the frame after the wall
    assert srvp_step([10, 10], [4, -4], HIGH, rng) == ([14.0, 6.0], [4, -4], False) and rng.calls == 2
    # A corner (both walls reached at the same time) is one bounce that turns both components.
    position, velocity, bounced = srvp_step([2, 34], [-4, 4], HIGH, stochastic=False)
    assert bounced and velocity == [4, -4] and position == [2.0, 34.0]
    # Along a wall (a zero component), and a digit that stops at the wall.
    assert srvp_step([5, 35], [0, 3], HIGH, stochastic=False) == ([5.0, 34.0], [0, -3], True)
    assert srvp_step([32, 5], [4, 0], HIGH, stochastic=False) == ([36.0, 5.0], [4, 0], False)


def test_randint_with_size_2_draws_like_two_scalar_calls():
    a, b = np.random.RandomState(3), np.random.RandomState(3)
    for _ in range(1000):
        assert a.randint(-4, 5, size=2).tolist() == [b.randint(-4, 5), b.randint(-4, 5)]


def test_srvp_trajectories_take_four_draws_then_two_per_bounce_and_none_after_the_last_frame():
    for seed in range(50):
        rng = CountingRandomState(seed)
        positions, velocities, bounces = srvp_trajectory(25, HIGH, rng)
        assert positions.shape == (25, 2) and velocities.shape == (25, 2) and not bounces[0]
        bounce_draws = rng.calls - 4
        assert bounce_draws % 2 == 0 and bounce_draws >= 2 * bounces.sum()  # a frame may hold 2 bounces
        assert positions.min() >= -1e-8 and positions.max() <= 36 + 1e-8
        assert np.array_equal(positions[0], np.round(positions[0]))  # an integer start


def test_srvp_trajectories_follow_the_same_law_as_advance():
    # Same draws in the same order: the paths agree up to floating-point rounding (the arithmetic
    # differs; that is why the test set has its own step).
    for seed in range(200):
        rng, twin = np.random.RandomState(seed), np.random.RandomState(seed)
        positions, velocities, _ = srvp_trajectory(25, HIGH, rng)
        start = [float(twin.randint(0, 37)), float(twin.randint(0, 37))]
        velocity = [float(twin.randint(-4, 5)), float(twin.randint(-4, 5))]
        path = [start]
        for _ in range(24):
            start, velocity, _ = advance(start, velocity, HIGH, AsGenerator(twin))
            path.append(start)
        np.testing.assert_allclose(positions, path, atol=1e-9)
        assert np.array_equal(rng.get_state()[1], twin.get_state()[1]) and rng.get_state()[2] == twin.get_state()[2]


def test_the_srvp_test_set_uses_every_digit_once_from_one_stream():
    test_set = MovingMNISTTestSet.generate(DIGITS, n_frames=10)
    assert len(test_set) == len(DIGITS) // 2 and test_set.config["protocol"] == "srvp"
    order = np.random.RandomState(42).permutation(len(DIGITS))
    assert np.array_equal(test_set.digit_indices.ravel(), order)  # sequence i: digits perm[2i], perm[2i+1]
    assert test_set.positions.shape == (10, 2, 10, 2) and test_set.positions.dtype == np.float64
    rendered = render_digits(DIGITS.images[test_set.digit_indices[3]], test_set.positions[3])
    assert np.array_equal(rendered, test_set.sequences[3])
    prefix = srvp_sequences(DIGITS.images, num_sequences=4, n_frames=10)
    assert all(np.array_equal(s.frames, f) for s, f in zip(prefix, test_set.sequences))
    with pytest.raises(ValueError, match="at most 10 sequences"):
        MovingMNISTTestSet.generate(DIGITS, num_sequences=11)
    with pytest.raises(ValueError, match="protocol"):
        MovingMNISTTestSet.generate(DIGITS, num_sequences=2, protocol="paper")
    other = MovingMNISTTestSet.generate(DIGITS, num_sequences=4, n_frames=10, protocol="per-sequence")
    assert other.config["protocol"] == "per-sequence" and not np.array_equal(other.sequences, test_set.sequences[:4])


def test_a_set_of_stand_in_digits_is_never_reloaded_as_mnist(isolated_data):
    tmp_path = isolated_data  # the data folder, where cached() keeps test sets
    stand_in = sklearn_digits("test")
    # Stand-in digits that claim nothing but differ from "MNIST" ones in images and origin.
    as_mnist = Digits(DIGITS.images, DIGITS.labels, "MNIST (fixture)", is_mnist=True)
    made = MovingMNISTTestSet.cached(digits=stand_in, num_sequences=3, n_frames=8)
    names = sorted(p.name for p in (tmp_path / "mnist").iterdir())
    assert names == ["smmnist_test_srvp_2digits_8frames_seed42_sklearn.npz"] and not made.config["is_mnist"]
    real = MovingMNISTTestSet.cached(digits=as_mnist, num_sequences=3, n_frames=8)
    assert (tmp_path / "mnist" / "smmnist_test_srvp_2digits_8frames_seed42_mnist.npz").is_file()
    assert real.config["is_mnist"] and not np.array_equal(real.sequences, made.sequences)
    # The same file asked for with the other digits: refused, whatever the path.
    with pytest.raises(DataError, match="digits_sha256"):
        MovingMNISTTestSet.cached(tmp_path / "mnist" / "smmnist_test_srvp_2digits_8frames_seed42_sklearn.npz",
                                  as_mnist, num_sequences=3, n_frames=8)


@pytest.mark.skipif(locate_mnist() is None,
                    reason="the real MNIST test digits are absent (run `slamp prepare mnist` or `make setup`)")
def test_the_default_test_set_is_srvps_bit_for_bit():
    digits = load_mnist_digits("test")
    test_set = MovingMNISTTestSet.generate(digits)
    assert test_set.sequences.shape == (5000, 25, 64, 64) and test_set.sequences.dtype == np.uint8
    assert np.array_equal(np.sort(test_set.digit_indices.ravel()), np.arange(10000))  # each digit once
    # SHA-256 of the frames as uint8 (sequence, frame, row, column) in C order; SRVP's own script
    # (preprocessing/mmnist/make_test_set.py --seq_len 25) gives the same bytes (its (T, N, H, W)
    # array transposed to (N, T, H, W)).
    assert test_set.sha256() == SRVP_TEST_SET_SHA256
    assert np.array_equal(MovingMNISTTestSet.generate(digits, num_sequences=8).sequences, test_set.sequences[:8])
