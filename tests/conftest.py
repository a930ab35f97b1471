"""Shared test setup: the entry points' MindSpore set-up on CPU, tiny model configurations."""
import importlib.util

import pytest

from src.models.ipt import IPTConfig
from src.runtime import setup

setup("CPU")  # the entry points' set-up (graph mode, the CPU kernel choice), before any test runs a kernel

# Official structure at toy sizes: 4 feature channels -> 36-dim tokens, 3 heads, 256 tokens of a 48x48 tile.
TINY = dict(n_feats=4, num_heads=3, num_encoder_layers=1, num_decoder_layers=1)


@pytest.fixture
def tiny_config():
    def make(tasks=("sr_x2",), **changes):
        return IPTConfig(tasks=tuple(tasks), **{**TINY, **changes})
    return make


def load_script(path):
    """Import a script that is not in a package (scripts/, benchmarks/) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
