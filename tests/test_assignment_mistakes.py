"""The autograder catches the mistakes students make. For every exercise, wrong answers (a missing
factor, a flipped sign, an off-by-one, the wrong axis, an ignored argument, a wrong shape) put in
place of the solution must fail with a hint that names the mistake; the solution passes and the
blank fails."""
import re
import sys
import textwrap
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import assignments  # noqa: E402

from slamp import exercises as checks  # noqa: E402


# exercise -> [(what the student wrote in place of the solution, words the hint must contain)]
def loss_answer(target: str = "x[:, 1:]", total: str | None = "sum(terms.values())",
                loss: str = "total + beta * sum(prediction.kl.values())") -> str:
    """A ``prediction_loss`` answer written as the solution is, with one part replaced by a mistake:
    the frames compared (``target``), the sum of the L2 terms (``total``; None leaves the line out),
    or the returned loss (``loss``)."""
    return (f"target = {target}\n"
            "terms = {'x_hat': reconstruction_loss(prediction.x_hat, target),\n"
            "         'x_p': reconstruction_loss(prediction.x_p, target),\n"
            "         'x_f': reconstruction_loss(prediction.x_f, target)}\n"
            + (f"total = {total}\n" if total else "")
            + "terms.update({f'kl_{name}': kl for name, kl in prediction.kl.items()})\n"
            f"return {loss}, terms")


MISTAKES = {
    "reparameterize": [
        ("return mu + torch.exp(logvar) * noise", "variance"),
        ("return mu + logvar * noise", "log of the variance"),
        ("return mu - torch.exp(0.5 * logvar) * noise", "added, not subtracted"),
        ("return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)", "noise= argument"),
        ("return (mu + torch.exp(0.5 * logvar) * noise).detach()", "gradient"),
        ("return mu + torch.exp(-0.5 * logvar) * noise", "exponent's sign"),
        ("return mu + 0.5 * torch.exp(logvar) * noise", "not half of it"),
    ],
    "gaussian_kl": [
        ("return logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1",
         "factor 1/2"),
        ("return 0.5 * (logvar_q - logvar_p + torch.exp(logvar_p - logvar_q) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_q) - 1)",
         "KL(p || q)"),
        ("return 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p))",
         "'- 1'"),
        ("return 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 - 1)",
         "prior's variance"),
        ("return (0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * "
         "torch.exp(-logvar_p) - 1)).sum(-1)", "one KL per element"),
        ("return 0.5 * (logvar_p - logvar_q + torch.exp(logvar_p - logvar_q) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_p) - 1)",
         "upside down"),
        ("return 0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * torch.exp(-logvar_q) - 1)",
         "not the posterior's"),
        ("return (0.5 * (logvar_p - logvar_q + torch.exp(logvar_q - logvar_p) + (mu_q - mu_p) ** 2 * "
         "torch.exp(-logvar_p) - 1)).mean(0)", "one KL per element"),
    ],
    "reconstruction_loss": [
        ("return ((prediction - target) ** 2).mean()", "sum over the time steps"),
        ("return ((prediction - target) ** 2).sum()", "you summed over them"),
        ("return (prediction - target).abs().mean(dim=(0, 2, 3, 4)).sum()", "squared"),
        ("return ((prediction - target) ** 2).mean(dim=(1, 2, 3, 4)).sum()", "right axes"),
        ("return ((prediction - target) ** 2).sum(dim=(2, 3, 4)).mean(0).sum()", "channels, height and width too"),
        ("return ((prediction - target) ** 2).mean(dim=(0, 3, 4)).sum()", "average over the channels"),
        ("return ((prediction - target) ** 2).mean(dim=(0, 2, 3, 4)).mean()", "sum over the time steps"),
    ],
    "warp": [
        ("coords = pixel_grid(height, width, frames.device, dtype) - flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "sign is flipped"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).flip(1).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "swapped"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros', align_corners=True)", "padding"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='nearest', padding_mode=padding, align_corners=True)", "bilinear"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "(B, T, 2, H, W)"),
        # x and y swapped in the grid itself: grid_sample gets (y, x)
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1).flip(-1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "swapped"),
        # normalised by the wrong side: x by height - 1, y by width - 1
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size.flip(1) - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "width - 1"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=False)", "align_corners"),
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype)\n"
         "grid = (2 * coords / (size + 1) - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "align_corners"),
        # only the y displacement's sign flipped
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width).to(dtype) * "
         "torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "y displacement"),
        # the x displacement used for both axes
        ("coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width)[:, :1].to(dtype)\n"
         "grid = (2 * coords / size - 1).permute(0, 2, 3, 1)\n"
         "out = F.grid_sample(images, grid, mode='bilinear', padding_mode=padding, align_corners=True)", "-2 columns"),
    ],
    "render_digits": [
        ("for digit, path in zip(digit_images, corners):\n"
         "    for t, (row, column) in enumerate(path):\n"
         "        frames[t, row:row + height, column:column + width] = np.maximum(frames[t, row:row + height, column:column + width], digit)\n"
         "return frames.astype(np.uint8)", "added"),
        ("for digit, path in zip(digit_images, corners):\n"
         "    for t, (row, column) in enumerate(path):\n"
         "        frames[t, row:row + height, column:column + width] += digit\n"
         "return frames.astype(np.uint8)", "clip"),
        ("for digit, path in zip(digit_images, corners):\n"
         "    for t, (row, column) in enumerate(path):\n"
         "        frames[t, column:column + width, row:row + height] += digit\n"
         "return np.minimum(frames, 255).astype(np.uint8)", "(row, column)"),
        ("for digit, path in zip(digit_images, corners):\n"
         "    row, column = path[0]\n"
         "    frames[:, row:row + height, column:column + width] += digit\n"
         "return np.minimum(frames, 255).astype(np.uint8)", "each step"),
    ],
    "blend": [
        ("return mask * motion + (1 - mask) * appearance", "the other way"),
        ("return (appearance + motion) / 2", "mask is ignored"),
        ("return mask * appearance + motion", "(1 - m)"),
        ("return (mask * appearance + (1 - mask) * motion).mean(1, keepdim=True)", "shape"),
        ("return mask * appearance + (1 + mask) * motion", "(1 + m)"),
        ("return mask[:, :1] * appearance + (1 - mask[:, :1]) * motion if mask.ndim == 4 else appearance", "frame by frame"),
    ],
    "prediction_loss": [
        ("target = x\nterms = {'x_hat': reconstruction_loss(prediction.x_hat, target)}\nreturn terms['x_hat'], terms",
         "x[:, 1:]"),
        (loss_answer(loss="total + sum(prediction.kl.values())"), "weighted by beta"),
        (loss_answer(loss="total + beta * prediction.kl['appearance']"), "every stream"),
        (loss_answer(total=None, loss="terms['x_hat'] + beta * sum(prediction.kl.values())"), "L2 terms of x^p and x^f"),
        (loss_answer(target="x[:, :-1]"), "x[:, 1:]"),
        (loss_answer(loss="total + beta * sum(prediction.kl.values()) / len(prediction.kl)"), "do not average"),
        (loss_answer(loss="beta * (total + sum(prediction.kl.values()))"), "KL terms only"),
    ],
    "previous_frames": [
        ("return x", "frame t-1"),
        ("return torch.cat([x[:, 1:], x[:, -1:]], 1)", "other way"),
        ("return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)", "position 0"),
        ("return torch.cat([x[:1], x[:-1]], 0)", "batch axis"),
        ("return torch.cat([x[:, :, :1], x[:, :, :-1]], 2)", "channel axis"),
        ("return torch.cat([x[..., :1], x[..., :-1]], -1)", "column axis"),
        ("return torch.roll(x, 1, 1)", "position 0"),
        ("return x.flip(1)", "frame t-1"),
        ("return x[:, :-1]", "shape"),
    ],
    "teacher_forcing_probability": [
        ("return k / (k + math.exp(epoch / k))", "k = 0"),
        ("if k == 0:\n    return 1.0\nreturn k / (k + math.exp(epoch / k))", "overflow"),
        ("if k == 0:\n    return 1.0\nif epoch / k > 700:\n    return 0.0\nreturn 1 / (1 + math.exp(epoch / k))",
         "factor k"),
        ("if k == 0:\n    return 1.0\nif epoch / k > 700:\n    return 0.0\nreturn 1 - k / (k + math.exp(epoch / k))",
         "the *prediction*"),
        ("if k == 0:\n    return 1.0\nreturn k / (k + math.exp(-epoch / k))", "decay"),
        ("if k == 0:\n    return 1.0\nreturn k / (k + math.exp(epoch * k))", "not e * k"),
    ],
    "psnr": [
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 20 * torch.log10(1 / mse.clamp_min(1e-10))",
         "20 log10"),
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 10 * torch.log(1 / mse.clamp_min(1e-10))", "log10"),
        ("mse = ((prediction - target) ** 2).mean()\nreturn 10 * torch.log10(1 / mse.clamp_min(1e-10))", "one PSNR per image"),
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 10 * torch.log10(1 / mse)", "100 dB"),
        # per-channel PSNRs averaged: passed before the colour check
        ("mse = ((prediction - target) ** 2).mean(dim=(2, 3))\nreturn (10 * torch.log10(1 / mse.clamp_min(1e-10))).mean(1)",
         "per-channel PSNRs"),
        ("mse = ((prediction - target) ** 2)[:, 0].flatten(1).mean(1)\nreturn 10 * torch.log10(1 / mse.clamp_min(1e-10))",
         "per-channel PSNRs"),
        ("mse = ((prediction - target) ** 2).mean(dim=(2, 3))\nreturn 10 * torch.log10(1 / mse.clamp_min(1e-10))",
         "shape (N,)"),
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 10 * torch.log10(255 ** 2 / mse.clamp_min(1e-10))",
         "peak is 1"),
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 10 * torch.log10(mse.clamp_min(1e-10))",
         "sign is flipped"),
        ("mse = ((prediction - target) ** 2).flatten(1).sum(1)\nreturn 10 * torch.log10(1 / mse.clamp_min(1e-10))",
         "do not sum"),
        ("mse = ((prediction - target) ** 2).flatten(1).mean(1)\nreturn 10 * torch.log10(1 / mse.clamp_min(1e-10).sqrt())",
         "root of the MSE"),
    ],
    "best_of_n": [
        ("best = scores.max(-1).values.argmax(1)\nreturn best, scores[torch.arange(len(scores)), best]", "single frame"),
        ("best = scores.mean(-1).argmin(1)\nreturn best, scores[torch.arange(len(scores)), best]", "lower is not better"),
        ("mean = scores.mean(-1)\nindex = mean.argmax(1)\nreturn index, scores[torch.arange(len(scores)), index]",
         "higher_is_better"),
        ("mean = scores.mean(-1)\nindex = mean.argmax(1) if higher_is_better else mean.argmin(1)\n"
         "return index, mean.max(1).values", "per-frame scores"),
        # averaged over the samples axis: passed before, when the check had 3 samples and 2 frames
        ("mean = scores.mean(1)\nindex = mean.argmax(1) if higher_is_better else mean.argmin(1)\n"
         "return index, scores[torch.arange(len(scores)), index]", "samples axis"),
        ("mean = scores.mean(-1)\nindex = mean.argmax() if higher_is_better else mean.argmin()\n"
         "return index, scores[torch.arange(len(scores)), index]", "shape (B,)"),
        ("mean = scores.mean(-1)\nindex = mean.argmax(1) if higher_is_better else mean.argmin(1)\n"
         "return index, scores[:, index]", "shape (B, T)"),
    ],
    "motion_labels": [
        ("angle = np.arctan2(-displacement[..., 0], displacement[..., 1])\n"
         "labels = np.rint(angle / (2 * np.pi / bins)).astype(np.int64) % bins\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)", "clockwise"),
        ("angle = np.arctan2(displacement[..., 1], displacement[..., 0])\n"
         "labels = np.rint(angle / (2 * np.pi / bins)).astype(np.int64) % bins\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)", "swapped"),
        ("angle = np.arctan2(displacement[..., 0], displacement[..., 1])\n"
         "labels = np.floor(angle / (2 * np.pi / bins)).astype(np.int64) % bins\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)", "centred"),
        ("angle = np.arctan2(displacement[..., 0], displacement[..., 1])\n"
         "return np.rint(angle / (2 * np.pi / bins)).astype(np.int64) % bins", "does not move"),
        ("angle = np.arctan2(displacement[..., 0], displacement[..., 1])\n"
         "labels = np.rint(angle / (2 * np.pi / bins)).astype(np.int64)\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)", "% bins"),
        ("angle = np.arctan2(displacement[..., 0], displacement[..., 1])\n"
         "labels = np.rint(angle / (2 * np.pi / 8)).astype(np.int64) % 8\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0)) > 1e-6, labels, -1)", "bins argument"),
        ("angle = np.arctan2(displacement[..., 0], displacement[..., 1])\n"
         "labels = np.rint(angle / (2 * np.pi / bins)).astype(np.int64) % bins\n"
         "return np.where(np.hypot(*np.moveaxis(displacement, -1, 0))[:1] > 1e-6, labels, -1)", "own labels"),
    ],
}
EXERCISES = {e.function: e for e in assignments.EXERCISES}
BLOCK = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<name>\S+)\n(?P<body>.*?)^[ \t]*# END SOLUTION\n", re.M | re.S)


def solution_block(name: str) -> tuple[str, str]:
    """The solution's lines in the notebook, and their indentation."""
    source = (ROOT / "notebooks" / f"{EXERCISES[name].notebook}.py").read_text()
    match = next(m for m in BLOCK.finditer(source) if m["name"] == name)
    return match["body"], match["indent"]


def answer(name: str, block: str | None):
    """The package's function with its solution replaced by ``block`` (None: the solution itself),
    defined in the namespace of its module, as the grader does."""
    import importlib

    module = importlib.import_module(f"slamp.{EXERCISES[name].module}")
    source = Path(module.__file__).read_text()
    start = re.search(rf"^def {name}\(", source, re.M).start()
    definition = source[start:source.index("\n\n\n", start)]
    body, indent = solution_block(name)
    assert body in definition + "\n", f"{name}: the notebook's solution must be in the package"
    if block is not None:
        definition = (definition + "\n").replace(body, textwrap.indent(block, indent) + "\n")
    namespace = {k: v for k, v in vars(module).items() if k != name}
    exec(definition, namespace)
    return namespace[name]


@pytest.mark.parametrize("name, block, hint", [(n, b, h) for n, wrongs in MISTAKES.items() for b, h in wrongs])
def test_every_listed_mistake_fails_with_its_hint(name, block, hint):
    result = checks.run(EXERCISES[name].check, answer(name, block))
    assert not result["passed"] and hint in result["message"], result["message"]


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_solution_passes_and_the_blank_fails(name):
    assert checks.run(EXERCISES[name].check, answer(name, None)) == {"passed": True, "message": "ok"}
    blank = checks.run(EXERCISES[name].check, answer(name, 'raise NotImplementedError("exercise")'))
    assert not blank["passed"] and "not done yet" in blank["message"]


def test_every_exercise_has_at_least_three_listed_mistakes():
    assert {name: len(MISTAKES.get(name, [])) >= 3 for name in EXERCISES} == {name: True for name in EXERCISES}


# ---- the self-check a notebook runs after each exercise (slamp.exercises.check) ----------------
def package_function(name: str):
    import importlib

    return getattr(importlib.import_module(f"slamp.{EXERCISES[name].module}"), name)


def test_every_exercise_has_a_check_under_another_name():
    assert set(checks.CHECKS) == set(EXERCISES)
    assert all(checks.CHECKS[name] is EXERCISES[name].check for name in EXERCISES)  # one source: the grader's
    # use(answer) hands the answer to every package module holding a function of its name: never to the checks
    assert not set(EXERCISES) & set(vars(checks))


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_self_check_passes_the_packages_own_function(name, capsys):
    assert checks.check(package_function(name)) is None
    assert capsys.readouterr().out == f"✓ {name}: passes the grader's checks\n"


SOME_MISTAKES = [(name, *wrongs[0]) for name, wrongs in MISTAKES.items()] + [
    ("gaussian_kl", *MISTAKES["gaussian_kl"][1]), ("warp", *MISTAKES["warp"][1]), ("psnr", *MISTAKES["psnr"][2])]


@pytest.mark.parametrize("name, block, hint", SOME_MISTAKES)
def test_the_self_check_prints_the_graders_hint_and_stops(name, block, hint, capsys):
    wrong = answer(name, block)
    with pytest.raises(AssertionError) as raised:  # an AssertionError: nbval and "Run All" stop there
        checks.check(wrong)
    printed = capsys.readouterr().out
    graded = checks.run(EXERCISES[name].check, wrong)["message"]  # what the grader says of the same answer
    assert hint in graded and printed == f"✗ {name}: {graded}\n", printed
    assert isinstance(raised.value, checks.SelfCheckFailed) and str(raised.value) == graded
    assert raised.value.exercise == name


def crashing_psnr(prediction, target):
    """A crash in the student's own line."""
    return prediction.view(7, -1)


def blank_reconstruction_loss(prediction, target):
    raise NotImplementedError("exercise reconstruction_loss: replace this line with your code")


def loss_on_a_blank(prediction, x, beta):
    return blank_reconstruction_loss(prediction.x_hat, x[:, 1:]), {}


def test_the_self_check_says_not_done_yet_where_it_crashed_and_what_to_do_first(capsys):
    blank = answer("blend", 'raise NotImplementedError("exercise blend: replace this line with your code")')
    with pytest.raises(checks.SelfCheckFailed, match=r"^not done yet \(the function still raises NotImplementedError\)$"):
        checks.check(blank)
    assert capsys.readouterr().out == "✗ blend: not done yet (the function still raises NotImplementedError)\n"
    with pytest.raises(checks.SelfCheckFailed) as raised:
        checks.check(crashing_psnr, "psnr")  # the exercise by name, for a function named otherwise
    line = crashing_psnr.__code__.co_firstlineno + 2
    assert str(raised.value).startswith("it raised RuntimeError: ")
    assert str(raised.value).endswith(f"(at {__file__}, line {line}: return prediction.view(7, -1))")
    assert capsys.readouterr().out == f"✗ psnr: {raised.value}\n"
    with pytest.raises(checks.SelfCheckFailed, match="it calls reconstruction_loss, which is not done yet"):
        checks.check(loss_on_a_blank, "prediction_loss")
    with pytest.raises(ValueError, match="no exercise named 'crashing_psnr'"):
        checks.check(crashing_psnr)


def test_the_self_check_leaves_the_random_numbers_of_the_notebook_alone():
    import torch

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    checks.check(package_function("gaussian_kl"))  # seeds torch for its own inputs
    assert torch.equal(torch.rand(4), expected)
