"""The exercises' checks: one function per exercise of the notebooks, which raises
:class:`Mistake` with a hint that names the likely mistake when an answer is wrong; and
:func:`check`, the self-check a notebook runs after each exercise.

Each check tries the answer on small inputs whose right result is known, and, where a common
mistake gives a recognisable wrong result (a missing factor, a flipped sign, an argument ignored,
the wrong axis), says which. The same checks serve twice: the class grader
(``tools/assignments.py``) runs them on a submission's function, which runs in a process of its
own, and a notebook runs them on the function it just defined::

    from slamp.exercises import check
    check(gaussian_kl)   # ✓ gaussian_kl: passes the grader's checks   (or ✗ and the hint, and stops)

A plain module (not exported from a notebook), in the student build too: it holds the checks,
which compare with right values, and no exercise's code. ``tests/test_assignment_mistakes.py``
keeps a list of wrong answers for every exercise and asserts that each one fails with its hint.
The checks are named ``check_<exercise>``, never the exercise's own name, so that
``slamp.notebook.use`` (which hands an answer to every package module holding a function of its
name) leaves them alone.
"""
from __future__ import annotations

import re
import traceback


class Mistake(AssertionError):
    """A wrong answer; the message is the hint shown to the student."""


class SelfCheckFailed(AssertionError):
    """What :func:`check` raises when an answer does not pass: the message is the grader's hint
    (or that the exercise is not done yet, or where the answer crashed); ``exercise`` names it."""

    def __init__(self, message: str, exercise: str = ""):
        super().__init__(message)
        self.exercise = exercise


def _where(error: BaseException, function) -> str:
    """`` (at FILE, line N: CODE)`` for the line that raised ``error``: the last one in the file
    that defines ``function`` (a notebook cell: "line N of the cell"), else the last one outside
    this module."""
    if getattr(error, "where", ""):  # raised in the submission's own process (tools/sandbox_worker.py)
        return f" (at {error.where})"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename != __file__]
    code = getattr(function, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = (own or frames or [None])[-1]
    if frame is None:
        return ""
    code = f": {frame.line}" if frame.line else ""
    if own and "ipykernel_" in frame.filename:  # a Jupyter cell: as the grader says it
        return f" (at line {frame.lineno} of the cell{code})"
    return f" (at {frame.filename}, line {frame.lineno}{code})"


def run(check, function, name: str | None = None) -> dict:
    """``{"passed", "message"}`` of ``check(function)``: ``message`` is the hint of a wrong answer,
    says that a blank is not done yet (or which other exercise it calls is not), or reports an
    exception inside the student's code with the line it came from; ``"ok"`` when it passes.
    ``name``: the exercise (``function.__name__`` by default)."""
    name = name or getattr(function, "__name__", "")
    try:
        check(function)
    except Mistake as mistake:
        return {"passed": False, "message": str(mistake)}
    except NotImplementedError as error:
        other = re.match(r"exercise (\w+):", str(error))
        if other and other[1] != name:
            return {"passed": False, "message": f"it calls {other[1]}, which is not done yet (it still raises "
                                                f"NotImplementedError): do exercise {other[1]} first"}
        return {"passed": False, "message": "not done yet (the function still raises NotImplementedError)"}
    except Exception as error:  # the student's code crashed: say where
        return {"passed": False, "message": f"it raised {type(error).__name__}: {error}{_where(error, function)}"}
    return {"passed": True, "message": "ok"}


def check(function, name: str | None = None) -> None:
    """Run the grader's checks of an exercise on ``function``, the notebook's answer, and say how
    it went: print ``✓ <name>: passes the grader's checks``, or print ``✗ <name>: <hint>`` and
    raise :class:`SelfCheckFailed` with the hint, so that running the notebook stops there.

    ``name`` is the exercise (``function.__name__`` by default, e.g. ``"gaussian_kl"``). The hint
    is the one the class grader gives for the same answer; an answer that is not done yet, or that
    raises, is reported so (with the line that raised). The checks seed
    torch's generator for their own inputs; the generators' state is restored afterwards, so
    the notebook's later random numbers do not depend on the check. Returns None."""
    import torch

    name = name or getattr(function, "__name__", "")
    if name not in CHECKS:
        raise ValueError(f"no exercise named {name!r}; the exercises are {', '.join(CHECKS)}")
    with torch.random.fork_rng(), torch.enable_grad():
        result = run(CHECKS[name], function, name)
    if result["passed"]:
        print(f"✓ {name}: passes the grader's checks")
        return
    print(f"✗ {name}: {result['message']}")
    raise SelfCheckFailed(result["message"], name)


def expect(condition, hint: str) -> None:
    """Raise :class:`Mistake` with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise Mistake(hint)


def call_with_gradients(function, *args, **kwargs):
    """``(output, requires_grad, gradients)``: ``function(*args, **kwargs)``, whether its output
    carries a gradient, and the gradient of ``output.sum()`` with respect to every positional
    argument that requires one (None where none reaches it). Graded answers run in another
    process (tools/assignments.py), which computes the gradients there."""
    import torch

    if hasattr(function, "call_with_gradients"):
        return function.call_with_gradients(*args, **kwargs)
    output = function(*args, **kwargs)
    inputs = [a for a in args if torch.is_tensor(a) and a.requires_grad]
    if not (torch.is_tensor(output) and output.requires_grad):
        return output, False, [None] * len(inputs)
    return output, True, list(torch.autograd.grad(output.sum(), inputs, allow_unused=True))


def _close(a, b, atol=1e-4) -> bool:
    import torch

    return torch.is_tensor(a) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol)


# ---- 00_elbo ----------------------------------------------------------------------------------
def check_reparameterize(function):
    import torch

    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, 2 * 0.6931472], requires_grad=True)  # variances 1 and 4: sigma 1 and 2
    noise = torch.tensor([0.5, -1.0])
    z = function(mu, logvar, noise=noise)
    expect(torch.is_tensor(z) and z.shape == mu.shape, f"return one z per element, shape {tuple(mu.shape)}")
    right = torch.tensor([1.5, -4.0])
    if not _close(z, right, 1e-3):
        candidates = {
            "sigma is exp(logvar / 2), not exp(logvar): you scaled the noise by the variance":
                mu + logvar.exp() * noise,
            "logvar is the log of the variance: sigma = exp(logvar / 2), not logvar itself": mu + logvar * noise,
            "the noise is added, not subtracted: z = mu + sigma * eps": mu - (0.5 * logvar).exp() * noise,
            "sigma = exp(logvar / 2) multiplies the noise, not the mean": mu * (0.5 * logvar).exp() + noise,
            "sigma = exp(+logvar / 2): the exponent's sign is flipped (that is 1 / sigma)": mu + (-0.5 * logvar).exp() * noise,
            "sigma = exp(logvar / 2), the root of the variance, not half of it": mu + 0.5 * logvar.exp() * noise,
        }
        for hint, wrong in candidates.items():
            expect(not _close(z, wrong.detach(), 1e-3), hint)
        a, b = function(mu, logvar, noise=noise), function(mu, logvar, noise=noise)
        expect(torch.equal(a, b), "use the noise you are given (the noise= argument) instead of drawing new noise")
        raise Mistake(f"z = mu + sigma * eps: expected {right.tolist()} for mu = [1, -2], sigma = [1, 2], "
                      f"eps = [0.5, -1], got {[round(v, 4) for v in z.tolist()]}")
    _, carries, (mu_grad, logvar_grad) = call_with_gradients(function, mu, logvar, noise=noise)
    expect(carries, "the gradient must reach mu and logvar: do not detach z or use .data / torch.no_grad()")
    expect(mu_grad is not None and logvar_grad is not None,
           "the gradient must reach mu and logvar: do not detach them or use .data / torch.no_grad()")
    expect(torch.allclose(mu_grad, torch.ones(2)), "the gradient reaching mu is wrong: z = mu + sigma * eps")
    expect(torch.allclose(logvar_grad, 0.5 * torch.exp(0.5 * logvar.detach()) * noise, atol=1e-4),
           "the gradient reaching logvar is wrong: z must depend on logvar through sigma = exp(logvar / 2)")
    torch.manual_seed(0)
    draws = function(torch.full((20000,), 3.0), torch.full((20000,), 2 * 0.6931472))
    expect(abs(draws.mean().item() - 3) < 0.05 and abs(draws.std().item() - 2) < 0.05,
           "without noise= the function must draw eps ~ N(0, 1) itself: z ~ N(3, 2^2) came out with mean "
           f"{draws.mean().item():.2f} and std {draws.std().item():.2f}")


def check_gaussian_kl(function):
    import torch
    from torch.distributions import Normal, kl_divergence

    torch.manual_seed(0)
    mu_q, mu_p, logvar_q, logvar_p = (torch.randn(5, 3) for _ in range(4))
    right = kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()), Normal(mu_p, (0.5 * logvar_p).exp()))
    found = function(mu_q, logvar_q, mu_p, logvar_p)
    expect(torch.is_tensor(found), "return a tensor")
    if found.shape != right.shape:
        hint = "one KL per element, shape (5, 3): do not sum or average over an axis (the caller does)"
        raise Mistake(f"{hint}; got shape {tuple(found.shape)}")
    if _close(found, right, 1e-5):
        zero = torch.zeros(())
        expect(_close(function(mu_q, logvar_q, zero, zero), kl_divergence(Normal(mu_q, (0.5 * logvar_q).exp()),
                                                                           Normal(0.0, 1.0)), 1e-5),
               "a standard normal prior given as zeros(()) must broadcast")
        return
    swapped = kl_divergence(Normal(mu_p, (0.5 * logvar_p).exp()), Normal(mu_q, (0.5 * logvar_q).exp()))
    expect(not _close(found, swapped, 1e-5), "this is KL(p || q): the KL term of the ELBO is KL(q || p), "
                                             "the posterior's divergence from the prior")
    expect(not _close(found, 2 * right, 1e-5), "twice the KL: the factor 1/2 in front is missing")
    expect(not _close(found, right + 0.5, 1e-5), "the '- 1' inside the bracket is missing (off by 1/2 per element)")
    flipped = 0.5 * (logvar_q - logvar_p + (logvar_q - logvar_p).exp() + (mu_q - mu_p) ** 2 * (-logvar_p).exp() - 1)
    expect(not _close(found, flipped, 1e-5),
           "the log-variance difference has the wrong sign: log(sigma_p^2 / sigma_q^2) = logvar_p - logvar_q")
    ratio_flipped = 0.5 * (logvar_p - logvar_q + (logvar_p - logvar_q).exp() + (mu_q - mu_p) ** 2 * (-logvar_p).exp() - 1)
    expect(not _close(found, ratio_flipped, 1e-5),
           "the variance ratio is upside down: sigma_q^2 / sigma_p^2 = exp(logvar_q - logvar_p)")
    by_posterior = 0.5 * (logvar_p - logvar_q + (logvar_q - logvar_p).exp() + (mu_q - mu_p) ** 2 * (-logvar_q).exp() - 1)
    expect(not _close(found, by_posterior, 1e-5),
           "the squared mean difference is divided by the prior's variance sigma_p^2, not the posterior's")
    with_variance = 0.5 * (logvar_p - logvar_q + (logvar_q - logvar_p).exp() + (mu_q - mu_p) ** 2 - 1)
    expect(not _close(found, with_variance, 1e-5),
           "the squared mean difference must be divided by the prior's variance, (mu_q - mu_p)^2 / sigma_p^2")
    raise Mistake("does not match KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) per element; compare with "
                  "torch.distributions.kl_divergence on a few numbers")


# ---- 01_flow_warping --------------------------------------------------------------------------
def check_warp(function):
    import torch

    torch.manual_seed(0)
    square = torch.rand(2, 3, 8, 8)
    out = function(square, torch.zeros(2, 2, 8, 8))
    expect(torch.is_tensor(out) and out.shape == square.shape, f"return frames of the input's shape {tuple(square.shape)}")
    if not _close(out, square, 1e-5):
        expect(not _close(out, square.transpose(-1, -2), 1e-5),
               "x and y are swapped: zero flow transposes the image. grid_sample wants (x, y) = (column, row) in the "
               "last axis of the grid, and channel 0 of the flow is x")
        raise Mistake("zero flow must return the image unchanged (check the pixel grid and align_corners=True)")
    image = torch.rand(2, 3, 8, 10)  # not square: x runs over 10 columns, y over 8 rows
    out = function(image, torch.zeros(2, 2, 8, 10))
    expect(torch.is_tensor(out) and out.shape == image.shape, f"return frames of the input's shape {tuple(image.shape)}")
    expect(_close(out, image, 1e-5), "zero flow must return a 8x10 image unchanged (it does for a square one): "
                                     "normalise x by width - 1 and y by height - 1, not the other way round")
    flow = torch.zeros(2, 2, 8, 10)
    flow[:, 0] = -2  # every pixel reads the one 2 columns to its left: the image moves right by 2
    moved = function(image, flow)
    if not torch.allclose(moved[..., 2:], image[..., :-2], atol=1e-5):
        expect(not torch.allclose(moved[..., :-2], image[..., 2:], atol=1e-5),
               "the image moved the wrong way: the flow points from each target pixel to where it is read, "
               "out[p] = frames[p + flow(p)], so the flow's sign is flipped")
        expect(not torch.allclose(moved[..., 2:, :], image[..., :-2, :], atol=1e-5),
               "x and y are swapped: channel 0 of the flow is x (columns), channel 1 is y (rows), and grid_sample "
               "wants (x, y) in the last axis")
        raise Mistake("an integer flow of -2 columns must shift the image 2 pixels right exactly (pixel units: "
                      "convert to grid_sample's [-1, 1] with 2 * coords / (size - 1) - 1)")
    expect(moved[..., :2].abs().max() == 0, "samples from outside the image must be 0 with padding='zeros'")
    down = torch.zeros(2, 2, 8, 10)
    down[:, 1] = -1  # every pixel reads the one a row above: the image moves down by 1
    moved = function(image, down)
    if not torch.allclose(moved[..., 1:, :], image[..., :-1, :], atol=1e-5):
        expect(not torch.allclose(moved[..., :-1, :], image[..., 1:, :], atol=1e-5),
               "the y displacement has the wrong sign: out[y, x] = frames[y + flow_y, x + flow_x]")
        raise Mistake("a flow of -1 in channel 1 (y, rows) must shift the image 1 row down exactly; yours does not "
                      "(does channel 1 of the flow reach the rows of the grid?)")
    border = function(image, flow, padding="border")
    expect(torch.allclose(border[..., :2], image[..., :1].expand(-1, -1, -1, 2), atol=1e-5),
           "the padding argument is ignored: with padding='border' a sample outside the image takes the edge pixel "
           "(pass it to grid_sample's padding_mode)")
    half = torch.zeros(1, 2, 8, 10)
    half[:, 0] = 0.5
    expect(torch.allclose(function(image[:1], half)[..., :-1], (image[:1, ..., :-1] + image[:1, ..., 1:]) / 2, atol=1e-5),
           "a flow of half a pixel must average the two neighbours: use bilinear interpolation")
    video, flows = torch.rand(2, 4, 3, 8, 10), torch.zeros(2, 4, 2, 8, 10)
    flows[..., 0, :, :] = -2
    try:
        warped = function(video, flows)
    except Exception as error:
        raise Mistake(f"a video (B, T, C, H, W) with flows (B, T, 2, H, W) must work too (flatten B and T, then "
                      f"restore them); it raised {type(error).__name__}: {error}") from None
    expect(warped.shape == video.shape and torch.allclose(warped[..., 2:], video[..., :-2], atol=1e-5),
           "a video (B, T, C, H, W) with flows (B, T, 2, H, W) must warp each frame by its own flow")


# ---- 03_slamp_baseline ------------------------------------------------------------------------
def check_blend(function):
    import torch

    torch.manual_seed(0)
    # colour, not square; the one-channel mask broadcasts over the channels
    appearance, motion, mask = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 4, 5), torch.rand(2, 1, 4, 5)
    found = function(appearance, motion, mask)
    expect(torch.is_tensor(found) and found.shape == appearance.shape,
           f"one frame per input frame, shape {tuple(appearance.shape)} (the one-channel mask broadcasts over channels)")
    right = mask * appearance + (1 - mask) * motion
    if _close(found, right, 1e-6):
        video = [torch.rand(2, 4, 3, 4, 5), torch.rand(2, 4, 3, 4, 5), torch.rand(2, 4, 1, 4, 5)]
        expect(_close(function(*video), video[2] * video[0] + (1 - video[2]) * video[1], 1e-6),
               "videos (B, T, C, H, W) with a mask (B, T, 1, H, W) must blend frame by frame too")
        return
    expect(not _close(found, mask * motion + (1 - mask) * appearance, 1e-6),
           "the mask weighs the appearance prediction: m = 1 means x^p, m = 0 means x^f (Eq. 1); yours is the other way")
    expect(not _close(found, (appearance + motion) / 2, 1e-6), "the mask is ignored: this is the plain average")
    expect(not _close(found, mask * appearance + motion, 1e-6), "the motion prediction needs the weight (1 - m)")
    expect(not _close(found, mask * appearance + (1 + mask) * motion, 1e-6), "the motion prediction's weight is "
                                                                             "(1 - m), not (1 + m)")
    raise Mistake("x̂ must blend the two predictions pixel by pixel with the mask (Eq. 1)")


# ---- 04_slamp ---------------------------------------------------------------------------------
def check_previous_frames(function):
    import torch

    # every value distinct (B=3, T=5, C=2, H=3, W=4): a shift along any other axis shows
    video = torch.arange(3 * 5 * 2 * 3 * 4, dtype=torch.float32).view(3, 5, 2, 3, 4)
    earlier = function(video)
    expect(torch.is_tensor(earlier) and earlier.shape == video.shape,
           f"one earlier frame per frame, shape {tuple(video.shape)} (B, T, C, H, W); got "
           f"{tuple(earlier.shape) if torch.is_tensor(earlier) else type(earlier).__name__}")
    if not torch.equal(earlier[:, 1:], video[:, :-1]):
        for axis, name in ((0, "batch axis (0)"), (2, "channel axis (2)"), (3, "row axis (3)"), (4, "column axis (4)")):
            index = [slice(None)] * 5
            index[axis] = slice(1, None)
            before = [slice(None)] * 5
            before[axis] = slice(None, -1)
            expect(not torch.equal(earlier[tuple(index)], video[tuple(before)]),
                   f"the shift is along the {name}: shift along time, axis 1 of (B, T, C, H, W)")
        expect(not torch.equal(earlier[:, 1:], video[:, 1:]), "position t must hold frame t-1, not frame t")
        expect(not torch.equal(earlier[:, :-1], video[:, 1:]), "off by one the other way: position t holds frame "
                                                               "t+1; shift towards the future, not the past")
        raise Mistake("position t (t >= 1) must hold frame t-1 of the same video")
    expect(torch.equal(earlier[:, 0], video[:, 0]),
           "position 0 must hold the first frame itself (zero motion: a frame paired with itself), not zeros or "
           "the last frame")


# ---- 06_evaluation ----------------------------------------------------------------------------
def check_best_of_n(function):
    import torch

    # (B=2 sequences, N=4 samples, T=3 frames): N, T and B all differ, so a reduction or a choice
    # over the wrong axis gives another shape or another index
    scores = torch.tensor([[[5.0, 5.0, 5.0], [9.9, 0.0, 0.0], [6.0, 6.0, 6.3], [0.0, 1.0, 2.0]],   # means 5, 3.3, 6.1, 1
                           [[2.0, 2.0, 2.0], [1.0, 1.0, 1.0], [3.0, 8.0, 0.0], [4.0, 4.0, 4.5]]])  # 2, 1, 3.67, 4.17
    index, curve = function(scores)
    expect(torch.is_tensor(index) and index.shape == (2,),
           "return one index per sequence, shape (B,): choose over the samples axis 1 of (B, N, T) "
           f"(got shape {tuple(index.shape) if torch.is_tensor(index) else type(index).__name__})")
    if index.tolist() != [2, 3]:
        expect(index.tolist() != [1, 2], "you kept the sample with the best single frame: the protocol keeps the "
                                         "sample whose score *averaged over frames* is best")
        expect(index.tolist() != [3, 1], "lower is not better for PSNR and SSIM: take the largest mean "
                                         "(higher_is_better=True)")
        expect(index.tolist() != scores.mean(1).argmax(-1).tolist(),
               "you averaged over the samples axis (1) and chose a frame: average over the frames (the last axis, "
               "T) and choose over the samples (axis 1) of (B, N, T)")
        raise Mistake(f"the best sample by its mean over frames: expected [2, 3], got {index.tolist()} (reduce "
                      f"over the frame axis -1, choose over the sample axis 1)")
    expect(torch.is_tensor(curve) and curve.shape == (2, 3),
           "return the per-frame scores of each sequence's best sample, shape (B, T) "
           f"(got {tuple(curve.shape) if torch.is_tensor(curve) else type(curve).__name__}: index the samples of "
           "each sequence, scores[arange(B), index])")
    expect(torch.equal(curve, torch.tensor([[6.0, 6.0, 6.3], [4.0, 4.0, 4.5]])),
           "return the per-frame scores of the best sample itself (not their mean or the best frames)")
    index, _ = function(scores, higher_is_better=False)
    expect(index.tolist() == [3, 1], "the higher_is_better argument is ignored: for LPIPS the lowest mean wins")


# ---- 00_elbo: the L2 term ---------------------------------------------------------------------
def check_reconstruction_loss(function):
    import torch

    torch.manual_seed(0)
    # B=2, T=3, colour C=3, H=4, W=5: every axis its own size, so each wrong reduction gives another number
    prediction, target = torch.rand(2, 3, 3, 4, 5), torch.rand(2, 3, 3, 4, 5)
    prediction[:, 0] = target[:, 0]  # step 1 perfect: the steps differ
    found = function(prediction, target)
    expect(torch.is_tensor(found) and found.ndim == 0, "return one number (a scalar tensor)")
    squared = (prediction - target) ** 2
    right = squared.mean(dim=(0, 2, 3, 4)).sum()
    if _close(found, right, 1e-6):
        return
    expect(not _close(found, squared.mean(), 1e-6), "sum over the time steps: you averaged over them too "
                                                    "(the loss is the per-step mean squared error, summed over steps)")
    expect(not _close(found, squared.sum(), 1e-4), "average over batch, channels, height and width at each step: "
                                                   "you summed over them")
    expect(not _close(found, squared.sum(dim=(2, 3, 4)).mean(0).sum(), 1e-4),
           "average over channels, height and width too: you summed over them (only the time steps are summed)")
    expect(not _close(found, squared.mean(dim=(0, 3, 4)).sum(), 1e-5),
           "average over the channels too: you summed over them (mean over axes 0, 2, 3, 4)")
    expect(not _close(found, (prediction - target).abs().mean(dim=(0, 2, 3, 4)).sum(), 1e-6),
           "the error must be squared: a Gaussian likelihood is an L2 loss, not L1")
    expect(not _close(found, squared.mean(dim=(1, 2, 3, 4)).sum(), 1e-6),
           "reduce over the right axes of (B, T, C, H, W): mean over batch, C, H, W (0, 2, 3, 4), sum over time (1)")
    raise Mistake("the squared error averaged over batch, channels, height and width at each step, summed over "
                  "steps: expected {:.5f}, got {:.5f}".format(right.item(), float(found)))


# ---- 02_data: drawing digits ------------------------------------------------------------------
def check_render_digits(function):
    import numpy as np

    digits = np.zeros((2, 4, 4), dtype=np.uint8)
    digits[0, :, :2], digits[1, :, 1:] = 200, 100  # two digits that overlap when drawn at one place
    positions = np.array([[[0, 0], [2, 5]], [[0, 0], [6, 1]]], dtype=np.float64)  # (N, T, 2): (row, column)
    frames = function(digits, positions, frame_size=10)
    expect(isinstance(frames, np.ndarray) and frames.shape == (2, 10, 10),
           "return frames (T, frame_size, frame_size): one frame per position")
    expect(frames.dtype == np.uint8, "return uint8 frames, as MNIST's digits are")
    at_one_place = frames[0, :4, :4]
    expect(not (at_one_place[:, 1] == 200).all(), "overlapping digits are added (then clipped), not drawn one over "
                                                  "the other: where both have ink the sum counts")
    expect(not (at_one_place[:, 1] == (300 % 256)).all(), "clip the sum to 255 before converting to uint8: "
                                                          "300 wrapped around to 44")
    expect((at_one_place[:, 1] == 255).all() and (at_one_place[:, 0] == 200).all() and (at_one_place[:, 3] == 100).all(),
           "where the digits overlap the frame holds min(200 + 100, 255) = 255, elsewhere each digit's own ink")
    second = frames[1]
    expect(not (second[5:9, 2:4] == 200).all() or (second[2:6, 5:7] == 200).all(),
           "positions are (row, column): row 2, column 5 puts the digit's top-left corner 2 rows down, 5 columns right")
    expect((second[2:6, 5:7] == 200).all() and (second[6:10, 2:5] == 100).all() and second.sum() == 200 * 8 + 100 * 12,
           "each digit goes to its own position at each step (its top-left corner at positions[n, t])")


# ---- 03_slamp_baseline: the objective ---------------------------------------------------------
def check_prediction_loss(function):
    import torch

    from slamp.models import Prediction

    torch.manual_seed(0)
    x = torch.rand(2, 4, 1, 4, 4)
    parts = {name: torch.rand(2, 3, 1, 4, 4) for name in ("x_hat", "x_p", "x_f")}
    kl = {"appearance": torch.tensor(3.0), "motion": torch.tensor(5.0)}
    prediction = Prediction(**parts, mask=torch.rand(2, 3, 1, 4, 4), kl=kl)
    l2 = {name: ((value - x[:, 1:]) ** 2).mean(dim=(0, 2, 3, 4)).sum() for name, value in parts.items()}
    right = l2["x_hat"] + l2["x_p"] + l2["x_f"] + 0.01 * 8.0
    try:
        total, terms = function(prediction, x, 0.01)
    except ValueError as error:
        raise Mistake(f"compare each prediction with frames 2..T of x, x[:, 1:] (a prediction exists for every "
                      f"frame but the first); it raised {error}") from None
    expect(isinstance(terms, dict) and {"x_hat", "x_p", "x_f", "kl_appearance", "kl_motion"} <= set(terms),
           "return the terms by name: x_hat, x_p, x_f and kl_<stream> for every stream")
    expect(_close(terms["x_hat"], l2["x_hat"], 1e-5), "the x_hat term is the L2 of x̂ (prediction.x_hat) against x[:, 1:]")
    if _close(total, right, 1e-5):
        return
    expect(not _close(total, right - 0.01 * 8.0 + 8.0, 1e-5), "the KL terms are weighted by beta")
    expect(not _close(total, right - 0.01 * 4.0, 1e-5), "sum the streams' KL terms, do not average them")
    l2_sum = right - 0.01 * 8.0
    expect(not _close(total, 0.01 * (l2_sum + 8.0), 1e-5) and not _close(total, 0.01 * l2_sum + 8.0, 1e-5),
           "beta weighs the KL terms only, not the L2 terms")
    expect(not _close(total, right - 0.01 * 5.0, 1e-5), "every stream's KL counts: SLAMP has two, appearance and motion")
    expect(not _close(total, l2["x_hat"] + 0.01 * 8.0, 1e-5), "the L2 terms of x^p and x^f belong to the loss too: "
                                                               "they give each head its own gradient")
    raise Mistake(f"total = the three L2 terms + beta * (sum of the KL terms): expected {right.item():.5f}, "
                  f"got {float(total):.5f}")


# ---- 05_training: scheduled sampling ----------------------------------------------------------
def check_teacher_forcing_probability(function):
    import math

    try:
        off = function(7, 0)
    except ZeroDivisionError:
        raise Mistake("k = 0 switches scheduled sampling off: return 1 (always the true frame) before dividing by k") from None
    expect(off == 1, "k = 0 switches scheduled sampling off: the probability is 1")
    try:
        values = {e: function(e, 25.0) for e in (0, 25, 80, 299)}
    except OverflowError:
        raise Mistake("math.exp overflowed for k = 25 and epochs up to 299: the exponent is e / k, which stays "
                      "small early in training (not e * k)") from None
    right = {e: 25 / (25 + math.exp(e / 25)) for e in values}
    if all(abs(values[e] - right[e]) < 1e-9 for e in values):
        try:
            far = function(100_000, 25.0)
        except OverflowError:
            raise Mistake("late epochs overflow math.exp: the probability there is 0 (return it before exp "
                          "overflows)") from None
        expect(far == 0 or far < 1e-300, "late in training the probability falls to 0")
        return
    expect(not all(abs(values[e] - 1 / (1 + math.exp(e / 25))) < 1e-9 for e in values),
           "p(e) = k / (k + exp(e / k)): you dropped the factor k (this one starts at 1/2, not near 1)")
    expect(not all(abs(values[e] - (1 - right[e])) < 1e-9 for e in values),
           "this is the probability of reading the *prediction*: p(e) is the probability of the true frame, "
           "near 1 early and falling")
    expect(values[0] > 0.9 and values[299] < values[0],
           "p(e) must start near 1 and decay with the epoch (the exponent is e / k)")
    raise Mistake(f"p(e) = k / (k + exp(e / k)): for k = 25 expected {right}, got {values}")


# ---- 06_evaluation: PSNR ----------------------------------------------------------------------
def check_psnr(function):
    import torch

    target = torch.zeros(3, 1, 4, 6)  # grey, not square
    prediction = torch.zeros(3, 1, 4, 6)
    prediction[0] += 0.1          # MSE 0.01: 20 dB
    prediction[1, :, :2] += 0.5   # MSE 0.125: 9.03 dB
    found = function(prediction, target)
    expect(torch.is_tensor(found) and found.shape == (3,), "one PSNR per image, shape (N,): do not average over "
                                                           "the batch (the protocol scores every frame), nor keep "
                                                           "the channel or pixel axes")
    right = torch.tensor([20.0, 10 * torch.log10(torch.tensor(8.0)).item(), 100.0])
    if torch.allclose(found[:2], right[:2], atol=1e-3):
        expect(torch.isfinite(found[2]) and abs(found[2] - 100) < 1e-3,
               "identical images have MSE 0: cap the PSNR at 100 dB (clamp the MSE at 1e-10) instead of inf")
        colour_target = torch.full((2, 3, 4, 6), 0.5)
        colour = colour_target.clone()
        colour[0, 0] += 0.1   # one channel off by 0.1: MSE over the image 0.01 / 3, 24.77 dB
        colour[1] += 0.2      # every channel off by 0.2: MSE 0.04, 13.98 dB
        found = function(colour, colour_target)
        expect(torch.is_tensor(found) and found.shape == (2,),
               "colour images (N, 3, H, W) get one PSNR each too, shape (N,): reduce over channels, height and width")
        right = torch.tensor([10 * torch.log10(torch.tensor(300.0)).item(), 10 * torch.log10(torch.tensor(25.0)).item()])
        if torch.allclose(found, right, atol=1e-3):
            return
        expect(not torch.allclose(found[1], right[1], atol=1e-3),  # image 1: the same error in every channel
               "one PSNR per image from the MSE over all its channels and pixels: you averaged per-channel PSNRs "
               "(a perfect channel counts 100 dB), or scored one channel only")
        raise Mistake(f"PSNR of colour images: expected {right.tolist()} dB, got {found.tolist()} (the MSE is the "
                      "mean over channels, height and width)")
    expect(not torch.allclose(found[:2], 2 * right[:2], atol=1e-3), "PSNR is 10 log10(1 / MSE): 20 log10 applies to "
                                                                    "the root of the MSE, not to the MSE")
    expect(not torch.allclose(found[:2], right[:2] / 2, atol=1e-3), "PSNR is 10 log10(1 / MSE): 10 log10 of the root "
                                                                    "of the MSE gives half of it")
    expect(not torch.allclose(found[:2], right[:2] * torch.log(torch.tensor(10.0)), atol=1e-3),
           "decibels use log10, not the natural logarithm")
    expect(not torch.allclose(found[:2], -right[:2], atol=1e-3), "the sign is flipped: PSNR = 10 log10(1 / MSE), "
                                                                 "large when the error is small")
    expect(not torch.allclose(found[:2], right[:2] + 20 * torch.log10(torch.tensor(255.0)), atol=1e-3),
           "the images are in [0, 1]: the peak is 1, not 255")
    expect(not torch.allclose(found[:2], right[:2] - 10 * torch.log10(torch.tensor(24.0)), atol=1e-3),
           "the M in MSE is a mean: average the squared error over the pixels, do not sum it")
    raise Mistake(f"PSNR of images in [0, 1] (peak 1): expected {right[:2].tolist()} dB, got {found[:2].tolist()}")


# ---- 07_latents: labels of motion -------------------------------------------------------------
def check_motion_labels(function):
    import numpy as np

    # Two digits, seven moves each: right (a little up), down-right, down, left, up, up-left, none; and the
    # same moves in reverse order. Rows grow downwards.
    moves = np.array([[-0.05, 2], [2, 2], [3, 0], [0, -1], [-2, 0], [-1, -1], [0, 0]], dtype=np.float64)
    positions = np.stack([np.concatenate([[[0.0, 0.0]], np.cumsum(m, 0)]) for m in (moves, moves[::-1])])  # (2, 8, 2)
    found = np.asarray(function(positions, by="direction", bins=8))
    expect(found.shape == (2, 7), f"one label per digit and step: (N, T-1) = (2, 7), got {found.shape} (the angle "
                                  "comes from the last axis of the displacements, (row, column))")
    right = [0, 1, 2, 4, 6, 5, -1]  # DIRECTIONS: → ↘ ↓ ↙ ← ↖ ↑ ↗
    second = [-1] + right[:6][::-1]
    if found.tolist() == [right, second]:
        four = np.array([[[0.0, 0.0], [0, 1], [1, 1], [1, 0], [0, 0]]])  # right, down, left, up
        found = np.asarray(function(four, by="direction", bins=4))
        expect(found.tolist() == [[0, 1, 2, 3]], "the bins argument is ignored: with bins=4 the sectors are "
                                                 f"right 0, down 1, left 2, up 3; got {found.tolist()}")
        return
    expect(found[0, -1] == -1, "a digit that does not move has no direction: label it -1")
    expect(found.min() >= -1, "sectors count 0 .. bins - 1: wrap negative angles with % bins (moving up is sector 6, "
                              "not -2)")
    expect(found[1].tolist() == second or found[0].tolist() != right,
           "each digit gets its own labels: the second digit's are wrong (use the last axis of the displacements, "
           "not the first)")
    expect(found[0].tolist()[:6] != [0, 7, 6, 4, 2, 3], "clockwise on screen: rows grow downwards, so moving down is "
                                                         "sector 2 (the angle is atan2(row, column), not -row)")
    expect(found[0].tolist()[:6] != [2, 1, 0, 6, 4, 5], "the angle is atan2(d_row, d_column): you swapped them "
                                                         "(moving right must be sector 0)")
    expect(found[0, 0] != 7, "sector 0 is centred on 'right': round the angle to the nearest sector, do not floor it "
                             "(a move right and a little up is still sector 0)")
    raise Mistake(f"expected sectors {right} for → ↘ ↓ ← ↑ ↖ and no move, got {found[0].tolist()}")


CHECKS = {  # exercise (the function a notebook asks for) -> its check
    "reparameterize": check_reparameterize,
    "gaussian_kl": check_gaussian_kl,
    "reconstruction_loss": check_reconstruction_loss,
    "warp": check_warp,
    "render_digits": check_render_digits,
    "blend": check_blend,
    "prediction_loss": check_prediction_loss,
    "previous_frames": check_previous_frames,
    "teacher_forcing_probability": check_teacher_forcing_probability,
    "psnr": check_psnr,
    "best_of_n": check_best_of_n,
    "motion_labels": check_motion_labels,
}
