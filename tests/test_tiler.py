"""The tiler (src/tiler.py): plans, exact reconstruction, the official forward_chop, fixed batches, memory, JSON dump.

Stand-ins: a pointwise network (nearest-neighbour upscaling) isolates the stitching geometry: its correct result is
known exactly. A small PyTorch conv network (zero-padded convs: every output depends on where the tile lies) checks
paper mode against a rebuild of the official ``forward_chop``. The real IPT graph runs through the tiler in
test_tiler_real_graph and in tests/test_eval.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.tiler import band_schedule, make_plan, official_tile_count, pad_to_patch, restore, restore_rows

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(48, 48), (57, 86), (100, 61), (49, 47), (1, 1), (1, 70), (5, 130), (20, 3), (61, 60), (130, 49)]


def nearest(scale):
    """Pointwise stand-in network: (N, 3, P, P) -> nearest-neighbour upscaling by ``scale``."""
    return lambda batch: batch.repeat(scale, axis=2).repeat(scale, axis=3)


def expected_nearest(image, scale):
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


@pytest.mark.parametrize("mode", ["fast", "paper"])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_pointwise_reconstruction_is_exact(mode, scale):
    rng = np.random.default_rng(scale)
    for h, w in SIZES:
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        out = restore(image, nearest(scale), scale, tile_batch=8, mode=mode)
        assert out.shape == (h * scale, w * scale, 3) and out.dtype == np.float32
        if mode == "paper":   # means of 1, 2 or 4 equal values: exact
            np.testing.assert_array_equal(out, expected_nearest(image, scale), err_msg=f"{h}x{w}")
        else:                 # weighted means of equal values: float32 rounding only
            np.testing.assert_allclose(out, expected_nearest(image, scale), rtol=0, atol=1e-4, err_msg=f"{h}x{w}")


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_small_patch_size_and_wide_images(mode):
    rng = np.random.default_rng(0)
    for h, w in [(9, 300), (300, 9), (16, 16), (17, 100)]:
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        out = restore(image, nearest(2), 2, patch_size=16, tile_batch=3, mode=mode)
        np.testing.assert_allclose(out, expected_nearest(image, 2), rtol=0, atol=1e-4)


def test_small_images_are_reflect_padded():
    """A 30x20 image is padded to 48x48 by reflection (no edge repeat) before the network sees it."""
    seen = []
    image = np.arange(30 * 20 * 3, dtype=np.float32).reshape(30, 20, 3)

    def run(batch):
        seen.append(batch[0].copy())
        return batch
    restore(image, run, 1, tile_batch=1)
    padded = seen[0].transpose(1, 2, 0)
    assert padded.shape == (48, 48, 3)
    np.testing.assert_array_equal(padded[:30, :20], image)
    np.testing.assert_array_equal(padded[30, :20], image[28])      # reflect_101: row 30 mirrors row 28
    np.testing.assert_array_equal(padded[:30, 20], image[:, 18])
    np.testing.assert_array_equal(padded, np.pad(image, ((0, 18), (0, 28), (0, 0)), mode="reflect"))


def test_tile_counts():
    assert len(make_plan(256, 256, 2, mode="fast").tiles) == 49
    paper = make_plan(256, 256, 2, mode="paper")
    assert len(paper.tiles) == 361          # official 397 less the 36 duplicated top/left strip tiles
    assert official_tile_count(256, 256) == 397
    assert official_tile_count(128, 128) == 78 and official_tile_count(321, 481) == 972
    assert len(make_plan(256, 256, 2).tiles) * 5 <= official_tile_count(256, 256)
    assert len(make_plan(48, 48, 4, mode="paper").tiles) == 1 and len(make_plan(10, 3, 4).tiles) == 1


@pytest.mark.parametrize("length", [48, 49, 60, 83, 84, 85, 256, 1000])
def test_fast_origins_spread_with_overlap(length):
    plan = make_plan(length, 48, 1)
    ys = [y for y, _ in plan.tiles]
    assert ys[0] == 0 and ys[-1] == length - 48
    steps = np.diff(ys)
    assert np.all(steps <= 36) and np.all(steps > 0)        # overlap >= 12 = the blend ramp
    assert steps.max() - steps.min() <= 1 if len(steps) else True


def test_fast_weights_and_coverage():
    plan = make_plan(100, 150, 3)
    w = plan.weight_1d()
    assert w.dtype == np.float32 and w.shape == (144,) and plan.ramp == 36
    assert w[0] == np.float32(0.5 / 36) and w[-1] == w[0] and w[36:108].min() == 1
    np.testing.assert_array_equal(w, w[::-1])


def test_last_batch_is_padded_to_a_fixed_shape():
    shapes, firsts = [], []

    def run(batch):
        shapes.append(batch.shape)
        firsts.append(batch.copy())
        return batch.repeat(2, axis=2).repeat(2, axis=3)
    image = np.random.default_rng(1).uniform(0, 255, (100, 130, 3)).astype(np.float32)
    n = len(make_plan(100, 130, 2).tiles)
    assert n % 8
    progress = []
    out = restore(image, run, 2, tile_batch=8, progress=lambda done, total: progress.append((done, total)))
    assert set(shapes) == {(8, 3, 48, 48)} and len(shapes) == -(-n // 8)
    last = firsts[-1]
    used = n % 8
    for k in range(used, 8):                             # filled with copies of the last real tile
        np.testing.assert_array_equal(last[k], last[used - 1])
    assert progress[-1] == (n, n) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    one = restore(image, nearest(2), 2, tile_batch=1)
    np.testing.assert_array_equal(out, one)


def test_bad_arguments():
    with pytest.raises(ValueError, match="tile mode"):
        make_plan(10, 10, 2, mode="dense")
    with pytest.raises(ValueError, match="height"):
        make_plan(0, 10, 2)
    with pytest.raises(ValueError, match="shape"):
        restore(np.zeros((60, 60, 3), np.float32), lambda b: b, 2)   # the network returned scale 1


# --- the streaming stitcher against the whole-image stitcher it replaced -------------------------------------------

def whole_image_restore(image, run_batch, scale, patch_size=48, tile_batch=8, mode="fast"):
    """The reference: the stitcher before streaming, float32 sums over the whole padded output (kept here only)."""
    image = np.asarray(image).astype(np.float32, copy=False)
    h, w = image.shape[:2]
    plan = make_plan(h, w, scale, patch_size, mode)
    padded = pad_to_patch(image, patch_size)
    p = plan.patch_size
    acc = np.zeros((plan.padded_height * scale, plan.padded_width * scale, 3), np.float32)
    wsum = np.zeros(acc.shape[:2], np.float32)
    weight = plan.weight_2d()
    by_tile = [[] for _ in plan.tiles]
    for region in plan.regions:
        by_tile[region[0]].append(region[1:])
    batch = np.empty((tile_batch, 3, p, p), np.float32)
    for start in range(0, len(plan.tiles), tile_batch):
        chunk = plan.tiles[start:start + tile_batch]
        for k, (y, x) in enumerate(chunk):
            batch[k] = padded[y:y + p, x:x + p].transpose(2, 0, 1)
        batch[len(chunk):] = batch[len(chunk) - 1]
        out = np.asarray(run_batch(batch)).astype(np.float32, copy=False)
        for k in range(len(chunk)):
            tile = out[k].transpose(1, 2, 0)
            for sy, sx, rh, rw, dy, dx in by_tile[start + k]:
                src = tile[sy:sy + rh, sx:sx + rw]
                if weight is None:
                    acc[dy:dy + rh, dx:dx + rw] += src
                    wsum[dy:dy + rh, dx:dx + rw] += np.float32(1)
                else:
                    wv = weight[sy:sy + rh, sx:sx + rw]
                    acc[dy:dy + rh, dx:dx + rw] += src * wv[..., None]
                    wsum[dy:dy + rh, dx:dx + rw] += wv
    acc /= wsum[..., None]
    return np.ascontiguousarray(acc[:h * scale, :w * scale])


def noisy_network(scale, seed):
    """Stand-in whose tile outputs are random and far apart in magnitude (any change in the order of the float32
    additions shows in the last bits), the same sequence for each fresh instance: the input upscaled plus one of
    five fixed noise batches, scaled by 1e-6 .. 1e3 per tile and channel."""
    rng = np.random.default_rng(seed)
    pool, calls = [], []

    def run(batch):
        n, _, p, _ = batch.shape
        if not pool:
            pool.extend(rng.standard_normal((5, n, 3, p * scale, p * scale)).astype(np.float32))
        factor = np.float32(1e3) ** rng.integers(-2, 2, (n, 3, 1, 1)).astype(np.float32)
        calls.append(1)
        return pool[len(calls) % 5] * factor + batch.repeat(scale, axis=2).repeat(scale, axis=3)
    return run


STREAM_CASES = [(h, w) for h, w in SIZES] + [(47, 49), (61, 130), (96, 97)]


@pytest.mark.parametrize("mode", ["fast", "paper"])
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_streaming_equals_the_whole_image_stitcher_bit_for_bit(mode, scale):
    rng = np.random.default_rng(10 * scale + (mode == "paper"))
    for h, w in STREAM_CASES + ([(256, 256), (150, 321)] if scale == 2 else []):
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        batch = int(rng.integers(1, 9))
        ref = whole_image_restore(image, noisy_network(scale, h * w), scale, tile_batch=batch, mode=mode)
        blocks = []
        restore_rows(image, noisy_network(scale, h * w), lambda y, rows: blocks.append((y, rows.copy())), scale,
                     tile_batch=batch, mode=mode)
        assert [y for y, _ in blocks] == list(np.cumsum([0] + [len(r) for _, r in blocks[:-1]]))
        out = np.concatenate([r for _, r in blocks])
        assert out.shape == ref.shape == (h * scale, w * scale, 3) and out.dtype == np.float32
        np.testing.assert_array_equal(out.view(np.uint32), ref.view(np.uint32), err_msg=f"{mode} {h}x{w} x{scale}")
    image = rng.integers(0, 256, (61, 75, 3), dtype=np.uint8)   # uint8 input: converted tile by tile, exactly
    np.testing.assert_array_equal(restore(image, noisy_network(scale, 1), scale, mode=mode).view(np.uint32),
                                  whole_image_restore(image, noisy_network(scale, 1), scale, mode=mode).view(np.uint32))


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_streaming_small_patch_size_and_wide_images(mode):
    rng = np.random.default_rng(3)
    for h, w in [(9, 300), (300, 9), (16, 16), (17, 100), (70, 33)]:
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        ref = whole_image_restore(image, noisy_network(2, 7), 2, patch_size=16, tile_batch=3, mode=mode)
        out = restore(image, noisy_network(2, 7), 2, patch_size=16, tile_batch=3, mode=mode)
        np.testing.assert_array_equal(out.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_rows_are_finished_while_the_tiles_run(mode):
    """Rows leave as soon as no later tile touches them; the band held is one tile's output height at most."""
    h, w, scale = 300, 100, 2
    plan = make_plan(h, w, scale, mode=mode)
    done, band_rows = band_schedule(plan)
    assert band_rows <= plan.tile_out and done[-1] == h * scale
    assert done == sorted(done) and done[0] == 0
    calls, emitted = [], []

    def run(batch):
        calls.append(1)
        return batch.repeat(scale, axis=2).repeat(scale, axis=3)
    restore_rows(np.zeros((h, w, 3), np.uint8), run, lambda y, rows: emitted.append((len(calls), y, len(rows))),
                 scale, tile_batch=1, mode=mode)
    # with one tile per batch, the rows finished after tile k leave right after call k + 1
    expected, first = [], 0
    for k, d in enumerate(done):
        if d > first:
            expected.append((k + 1, first, d - first))
            first = d
    assert emitted == expected and emitted[0][0] < len(plan.tiles) // 2


# --- paper mode against the official forward_chop, rebuilt in PyTorch from its source --------------------------------

def official_forward_chop(x, model, scale, patch=48, batchsize=64):
    """PyTorch rebuild of the official ``Model.forward_chop`` (model/__init__.py), CPU, one device."""
    import torch
    import torch.nn.functional as F
    h, w = x.shape[-2:]
    padsize, shave = patch, patch // 2
    stride = shave // 2
    h_cut, w_cut = (h - padsize) % stride, (w - padsize) % stride

    def run(tiles):
        return torch.cat([model(tiles[i:i + batchsize]) for i in range(0, tiles.shape[0], batchsize)], 0)

    def unfold_tiles(t):
        u = F.unfold(t, padsize, stride=stride).transpose(0, 2).contiguous()
        return u.view(u.size(0), -1, padsize, padsize)

    def fold(y, size, kernel):
        return F.fold(y.view(y.size(0), -1, 1).transpose(0, 2).contiguous(), size, kernel, stride=stride * scale)

    def averaged(y_un, size, kernel, crop):
        y_un = y_un[crop].contiguous()
        inter = fold(y_un, size, kernel)
        ones = torch.ones(inter.shape, dtype=inter.dtype)
        divisor = F.fold(F.unfold(ones, kernel, stride=stride * scale), size, kernel, stride=stride * scale)
        return inter / divisor

    c, k, ks = stride * scale, padsize * scale, padsize * scale - shave * scale

    def cut_h(xs):
        y_un = run(unfold_tiles(xs))
        y = fold(y_un, (k, (w - w_cut) * scale), k)
        y[..., :, c:(w - w_cut) * scale - c] = averaged(
            y_un, (k, (w - w_cut - shave) * scale), (k, ks), (Ellipsis, slice(None), slice(c, k - c)))
        return y

    def cut_w(xs):
        y_un = run(unfold_tiles(xs))
        y = fold(y_un, ((h - h_cut) * scale, k), k)
        y[..., c:(h - h_cut) * scale - c, :] = averaged(
            y_un, ((h - h_cut - shave) * scale, k), (ks, k), (Ellipsis, slice(c, k - c), slice(None)))
        return y

    y_hw_cut = model(x[..., h - padsize:, w - padsize:])
    y_h_cut, y_w_cut = cut_h(x[..., h - padsize:, :]), cut_w(x[..., :, w - padsize:])
    y_h_top, y_w_top = cut_h(x[..., :padsize, :]), cut_w(x[..., :, :padsize])
    y_un = run(unfold_tiles(x))
    y = fold(y_un, ((h - h_cut) * scale, (w - w_cut) * scale), k)
    y[..., :k, :] = y_h_top
    y[..., :, :k] = y_w_top
    y[..., c:(h - h_cut) * scale - c, c:(w - w_cut) * scale - c] = averaged(
        y_un, ((h - h_cut - shave) * scale, (w - w_cut - shave) * scale), ks,
        (Ellipsis, slice(c, k - c), slice(c, k - c)))
    a_h, b_h = int((padsize - h_cut) / 2 * scale), int((padsize - h_cut) / 2 * scale + 0.5)
    a_w, b_w = int((padsize - w_cut) / 2 * scale), int((padsize - w_cut) / 2 * scale + 0.5)
    y = torch.cat([y[..., :y.size(2) - a_h, :], y_h_cut[..., b_h:, :]], dim=2)
    y_w_cat = torch.cat([y_w_cut[..., :y_w_cut.size(2) - a_h, :], y_hw_cut[..., b_h:, :]], dim=2)
    return torch.cat([y[..., :, :y.size(3) - a_w], y_w_cat[..., :, b_w:]], dim=3)


def conv_net(scale, seed=0):
    """A small PyTorch SR network with zero-padded convs (outputs depend on the tile borders) on 0..255."""
    import torch
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 3 * scale * scale, 3, padding=1), torch.nn.PixelShuffle(scale))
    net.eval()

    def model(x):
        with torch.no_grad():
            return net(x / 255.0) * 255.0 + torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    return model


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_paper_mode_equals_official_forward_chop(scale):
    torch = pytest.importorskip("torch")
    model = conv_net(scale, seed=scale)
    rng = np.random.default_rng(scale)
    for h, w in [(48, 48), (57, 86), (60, 72), (97, 50), (73, 61), (121, 134)]:
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
        ref = official_forward_chop(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()), model, scale)
        ref = ref[0].numpy().transpose(1, 2, 0)
        ours = restore(image, lambda b: model(torch.from_numpy(b)).numpy(), scale, tile_batch=5, mode="paper")
        assert ours.shape == ref.shape == (h * scale, w * scale, 3)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3, err_msg=f"{h}x{w} x{scale}")
        # the stand-in is not pointwise: a wrong region would differ by far more than the tolerance
        fast = restore(image, lambda b: model(torch.from_numpy(b)).numpy(), scale, tile_batch=5, mode="fast")
        if (h, w) != (48, 48):
            assert np.abs(fast - ref).max() > 0.1


def test_official_rebuild_reconstructs_pointwise_exactly():
    """The PyTorch rebuild itself: exact for a pointwise network (as the reference notes found for the original)."""
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(5).uniform(0, 255, (57, 86, 3)).astype(np.float32)
    for scale in (1, 2, 3):
        ref = official_forward_chop(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()),
                                    lambda t: torch.nn.functional.interpolate(t, scale_factor=scale), scale)
        np.testing.assert_allclose(ref[0].numpy().transpose(1, 2, 0), expected_nearest(image, scale), atol=1e-4)


# --- the JSON dump -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fast", "paper"])
def test_plan_json_dump(mode):
    proc = subprocess.run([sys.executable, "-m", "src.tiler", "plan", "--height", "61", "--width", "130", "--scale",
                           "3", "--mode", mode], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    dump = json.loads(proc.stdout)
    plan = make_plan(61, 130, 3, mode=mode)
    assert dump == plan.to_json_dict()
    assert dump["format"] == "ipt-tile-plan-1" and dump["padded_height"] == 61 and dump["padded_width"] == 130
    assert [tuple(t) for t in dump["tiles"]] == list(plan.tiles)
    if mode == "fast":
        np.testing.assert_array_equal(np.array(dump["weight_1d"], np.float32), plan.weight_1d())
        assert dump["weight"] == "ramp" and dump["ramp"] == 36
    else:
        assert dump["weight"] == "uniform" and dump["weight_1d"] == []
    bad = subprocess.run([sys.executable, "-m", "src.tiler", "plan", "--height", "0", "--width", "9", "--scale", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "height" in bad.stderr


# --- memory -------------------------------------------------------------------------------------------------------

MEMORY_SCRIPT = """
import resource, sys, numpy as np
sys.path.insert(0, {root!r})
from src.tiler import restore_rows
image = np.random.default_rng(0).integers(0, 256, (4000, 6000, 3), dtype=np.uint8)
out = np.empty((8000, 12000, 3), np.uint8)
out[:] = 0
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def write_rows(y, rows):
    out[y:y + len(rows)] = np.clip(np.rint(rows), 0, 255).astype(np.uint8)
restore_rows(image, lambda b: b.repeat(2, axis=2).repeat(2, axis=3), write_rows, 2, tile_batch=8)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
assert np.array_equal(out[::2, ::2], image) and np.array_equal(out[1::2, 1::2], image)
"""


def test_6000x4000_photo_at_x2_streams_in_a_band():
    """Fast mode, pointwise stand-in (the network's own memory is measured by benchmarks/memory_benchmark.py): with
    the uint8 input and output held, stitching adds less than 100 MB (the whole-image float32 sums were 1.5 GB)."""
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    before, peak = (int(v) / 2**10 for v in proc.stdout.split()[-2:])
    assert peak - before < 100, f"stitching added {peak - before:.0f} MB"
