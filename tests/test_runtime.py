"""slamp.runtime: keep_freed_memory reuses freed tensors' memory without page faults, and stays
bounded; memory_format picks the layout."""
import subprocess
import sys

import pytest
import torch

from slamp.runtime import keep_freed_memory, memory_format


TRAINING_STEPS = """
import resource, sys, torch
from slamp.models import SLAMP
from slamp.runtime import adam
from slamp.runtime import keep_freed_memory
assert keep_freed_memory(sys.argv[1] == "keep") is True
torch.manual_seed(0)
model = SLAMP.from_preset("tiny").to(memory_format=torch.channels_last)
optimizer = adam(model.parameters(), 1e-3)
video = torch.rand(16, 16, 1, 64, 64)  # full-size activations of 60 MB: glibc maps each one anew

def step():
    optimizer.zero_grad(set_to_none=True)
    model.loss(video, 2)[0].backward()
    optimizer.step()

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

for _ in range(8):  # the heap grows to its size over the first steps
    step()
before, rss_before = faults(), rss()
for _ in range(4):
    step()
print((faults() - before) / 4, rss() / rss_before)
"""


def training_steps(mode: str) -> tuple[float, float]:
    """Page faults per training step once warmed up, and the growth of the resident memory over
    four steps, with the allocator in ``mode``."""
    result = subprocess.run([sys.executable, "-c", TRAINING_STEPS, mode], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    faults, growth = result.stdout.split()
    return float(faults), float(growth)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_kept_memory_is_reused_without_page_faults_and_stays_bounded():
    settled_faults, _ = training_steps("settled")
    kept_faults, growth = training_steps("keep")
    assert settled_faults > 10_000  # glibc's own policy: every large activation's pages faulted in anew
    assert kept_faults < 0.1 * settled_faults  # measured: 3-7%
    assert growth < 1.05  # the kept heap does not grow from step to step


def test_keep_freed_memory_says_false_where_it_cannot(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False


def test_memory_format_auto_is_channels_last_on_the_cpu_only():
    assert memory_format("auto", torch.device("cpu")) == torch.channels_last
    assert memory_format("auto", torch.device("cuda")) == torch.contiguous_format
    assert memory_format("contiguous", torch.device("cpu")) == torch.contiguous_format
