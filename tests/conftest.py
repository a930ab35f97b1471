"""Shared test setup: the entry points' MindSpore set-up on CPU, tiny model configurations."""
import importlib.util
import subprocess
from pathlib import Path

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


@pytest.fixture(scope="session")
def cpp_tools():
    """{name: path} of the C++ harness's tools without an SDK (ipt_tile_plan, ipt_infer_replay, ipt_score); built
    here (``build.sh --lib-only``) when scripts/run_tests.sh has not built them."""
    root = Path(__file__).resolve().parents[1]
    build = root / "ascend310_infer" / "build"
    names = ("ipt_tile_plan", "ipt_infer_replay", "ipt_score")
    if not all((build / n).exists() for n in names):
        proc = subprocess.run(["bash", str(root / "ascend310_infer" / "build.sh"), "--lib-only"], capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr
    return {n: build / n for n in names}


def load_script(path):
    """Import a script that is not in a package (scripts/, benchmarks/) as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
