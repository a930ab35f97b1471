"""The real IPT graph through the tiler (src/inference.Restorer): equal to the NumPy oracle run through the same tiler,
one compile per (task, tile batch) whatever the image sizes, self-ensemble."""
from pathlib import Path

import numpy as np
import pytest

from numpy_ipt import ipt_forward
from src.checkpoint.loader import load_model
from src.inference import Restorer
from src.tiler import make_plan, restore

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCALES = [2, 3, 4, 1, 1, 1]


@pytest.fixture(scope="module")
def tiny():
    """The tiny 6-task fixture (a real official-format .pt) and its weights in the oracle's naming."""
    ipt, _ = load_model(FIXTURES / "ipt_tiny_pretrain_zip.pt", None, 3)
    data = np.load(FIXTURES / "ipt_tiny_pretrain_zip.npz")
    sd = {k: data[k] for k in data.files if k.split(".")[0] in ("head", "body", "tail", "sub_mean", "add_mean")}
    return ipt, sd


def oracle_batch(sd, task_index):
    return lambda b: ipt_forward(sd, b.astype(np.float64), task_index, SCALES, 3).astype(np.float32)


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_graph_through_tiler_equals_oracle_and_compiles_once(tiny, mode):
    ipt, sd = tiny
    restorer = Restorer(ipt, "sr_x2", tile_batch=3, tile_mode=mode)
    rng = np.random.default_rng(0)
    sizes = [(50, 61), (20, 9), (48, 48)]
    for h, w in sizes:
        image = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
        ours = restorer.restore(image)
        assert ours.shape == (2 * h, 2 * w, 3) and ours.dtype == np.float32
        ref = restore(image, oracle_batch(sd, 0), 2, tile_batch=3, mode=mode)
        assert np.abs(ours - ref).max() < 1e-3, (h, w, np.abs(ours - ref).max())
    assert restorer.compiles == 1
    restorer.run_batch(np.zeros((2, 3, 48, 48), np.float32))   # another batch shape: the counter sees the compile
    assert restorer.compiles == 2
    assert restorer.tiles_run == sum(len(make_plan(h, w, 2, mode=mode).tiles) for h, w in sizes)


def test_denoise_task_and_self_ensemble(tiny):
    ipt, sd = tiny
    image = np.random.default_rng(1).integers(0, 256, (30, 52, 3)).astype(np.float32)
    restorer = Restorer(ipt, "denoise_30", tile_batch=4, self_ensemble=True)
    ours = restorer.restore(image)
    run = oracle_batch(sd, 4)
    views = []
    for t in (False, True):
        for fh in (False, True):
            for fv in (False, True):
                x = image[:, ::-1] if fv else image
                x = x[::-1] if fh else x
                x = x.transpose(1, 0, 2) if t else x
                y = restore(np.ascontiguousarray(x), run, 1, tile_batch=4)
                y = y.transpose(1, 0, 2) if t else y
                y = y[::-1] if fh else y
                views.append(y[:, ::-1] if fv else y)
    assert np.abs(ours - np.mean(views, axis=0)).max() < 1e-3
    assert restorer.compiles == 1 and restorer.tiles_run == 8 * len(make_plan(30, 52, 1).tiles)
    # bit for bit the whole-image sum it replaced: each view restored, transformed back, added in float64
    plain = Restorer(ipt, "denoise_30", tile_batch=4)
    total = None
    for t in (False, True):
        for fh in (False, True):
            for fv in (False, True):
                x = image[:, ::-1] if fv else image
                x = x[::-1] if fh else x
                y = plain.restore(np.ascontiguousarray(x.transpose(1, 0, 2) if t else x))
                y = y.transpose(1, 0, 2) if t else y
                y = y[::-1] if fh else y
                y = y[:, ::-1] if fv else y
                total = y.astype(np.float64) if total is None else total + y
    np.testing.assert_array_equal(ours.view(np.uint32), (total / 8).astype(np.float32).view(np.uint32))
