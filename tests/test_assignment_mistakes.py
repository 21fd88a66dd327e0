"""The autograder catches the mistakes students make: for every exercise, wrong answers (a missing
factor, a flipped sign, an off-by-one, the wrong axis, an ignored argument, a wrong shape) must
fail with a hint that names the mistake; the solution must pass and the blank must fail."""
import sys
import textwrap
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import assignment_checks as checks  # noqa: E402
import assignments  # noqa: E402


# exercise function -> [(wrong body, words the hint must contain)]; each body is the function's
# code after its signature, written the way a student would.
MISTAKES = {
    "reparameterize": [
        ("return mu + torch.exp(logvar) * noise", "variance"),
        ("return mu + logvar * noise", "log of the variance"),
        ("return mu - torch.exp(0.5 * logvar) * noise", "added, not subtracted"),
        ("return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)", "noise= argument"),
        ("return (mu + torch.exp(0.5 * logvar) * noise).detach()", "gradient"),
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
    ],
    "blend": [
        ("return mask * motion + (1 - mask) * appearance", "the other way"),
        ("return (appearance + motion) / 2", "mask is ignored"),
        ("return mask * appearance + motion", "(1 - m)"),
        ("return (mask * appearance + (1 - mask) * motion).mean(1, keepdim=True)", "shape"),
    ],
    "previous_frames": [
        ("return x", "frame t-1"),
        ("return torch.cat([x[:, 1:], x[:, -1:]], 1)", "other way"),
        ("return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)", "position 0"),
        ("return torch.cat([x[:1], x[:-1]], 0)", "batch axis"),
        ("return x[:, :-1]", "shape"),
    ],
    "best_of_n": [
        ("best = scores.max(-1).values.argmax(1)\n"
         "return best, scores[torch.arange(len(scores)), best]", "single frame"),
        ("best = scores.mean(-1).argmin(1)\nreturn best, scores[torch.arange(len(scores)), best]", "lower is not better"),
        ("mean = scores.mean(-1)\nindex = mean.argmax(1)\nreturn index, scores[torch.arange(len(scores)), index]",
         "higher_is_better"),
        ("mean = scores.mean(-1)\nindex = mean.argmax(1) if higher_is_better else mean.argmin(1)\n"
         "return index, mean.max(1).values", "per-frame scores"),
    ],
}

SIGNATURES = {
    "reparameterize": "def reparameterize(mu, logvar, noise=None, generator=None):\n"
                      "    if noise is None:\n        noise = torch.randn_like(mu)\n",
    "gaussian_kl": "def gaussian_kl(mu_q, logvar_q, mu_p, logvar_p):\n",
    "blend": "def blend(appearance, motion, mask):\n",
    "previous_frames": "def previous_frames(x):\n",
    "best_of_n": "def best_of_n(scores, higher_is_better=True):\n",
}
CHECKS = {e.function: e.check for e in assignments.EXERCISES}


def student_function(name: str, body: str):
    import torch

    namespace = {"torch": torch}
    exec(SIGNATURES[name] + textwrap.indent(body, "    "), namespace)
    return namespace[name]


@pytest.mark.parametrize("name, body, hint", [(n, b, h) for n, wrongs in MISTAKES.items() for b, h in wrongs],
                         ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
def test_every_listed_mistake_fails_with_its_hint(name, body, hint):
    result = checks.run(CHECKS[name], student_function(name, body))
    assert not result["passed"] and hint in result["message"], result["message"]


def test_at_least_three_mistakes_per_exercise():
    counts = {name: len(wrongs) for name, wrongs in MISTAKES.items()} | {"warp": len(WARP_MISTAKES)}
    assert all(counts.get(e.function, 0) >= 3 for e in assignments.EXERCISES), counts


# warp: the student writes three lines inside the given function; each mistake replaces one of
# them: (how the line of the solution starts, the student's line, words the hint must contain).
WARP_MISTAKES = [
    ("coords =", "coords = pixel_grid(height, width, frames.device, dtype) - flow.reshape(-1, 2, height, width).to(dtype)",
     "sign is flipped"),
    ("coords =", "coords = pixel_grid(height, width, frames.device, dtype) + flow.reshape(-1, 2, height, width)"
                 ".flip(1).to(dtype)", "swapped"),
    ("out = F.grid_sample", "out = F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros', align_corners=True)",
     "padding"),
    ("out = F.grid_sample", "out = F.grid_sample(images, grid, mode='nearest', padding_mode=padding, align_corners=True)",
     "bilinear"),
    ("coords =", "coords = pixel_grid(height, width, frames.device, dtype) + flow.to(dtype)", "(B, T, 2, H, W)"),
]


@pytest.mark.parametrize("start, wrong, hint", WARP_MISTAKES)
def test_warp_mistakes_fail_with_their_hint(start, wrong, hint):
    import slamp.warp

    source = Path(slamp.warp.__file__).read_text()
    begin = source.index("def warp(")
    definition = source[begin:source.index("\n\n\n", begin)]
    replaced = "\n".join("    " + wrong if line.strip().startswith(start) else line for line in definition.splitlines())
    assert replaced.count(wrong) == 1, "the mistake must replace exactly one line of the solution"
    namespace = dict(vars(slamp.warp))
    exec(replaced, namespace)
    result = checks.run(checks.warp, namespace["warp"])
    assert not result["passed"] and hint in result["message"], result["message"]
