"""The names earlier slamp versions gave the three images, and the paper's names that replaced them.

The paper calls the prediction x̂, the appearance prediction x^p and the motion prediction x^f;
slamp now names them ``x_hat``, ``x_p`` and ``x_f`` everywhere (``Prediction``, the loss terms,
the evaluation's heads, the logs, the figures). Older logs (``train.csv``), result files and
command lines still use the old names: they are read through these tables, with a warning where a
person typed them. ``tests/test_structure.py`` checks that the old names appear nowhere else.
"""
from __future__ import annotations

import warnings


LOSS_TERMS = {"final": "x_hat", "pixel": "x_p", "flow": "x_f"}  # loss terms and train.csv columns
HEADS = {"final": "x_hat", "appearance": "x_p", "motion": "x_f"}  # `slamp evaluate --heads`, result files
PREDICTION = {"frames": "x_hat", "appearance": "x_p", "motion": "x_f"}  # attributes of slamp.models.Prediction


def renamed_columns(row: dict) -> dict:
    """A row of an older ``train.csv`` with its loss terms under today's names."""
    return {LOSS_TERMS.get(name, name): value for name, value in row.items()}


def renamed_heads(heads) -> list[str]:
    """Heads as given on a command line, the old names replaced by today's (with a warning)."""
    old = [head for head in heads if head in HEADS]
    if old:
        warnings.warn(f"heads {old} are now named {[HEADS[h] for h in old]} (the paper's x̂, x^p, x^f)",
                      DeprecationWarning, stacklevel=2)
    return [HEADS.get(head, head) for head in heads]
