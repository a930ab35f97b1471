"""The one tiler: restore an image of any size with a network that only takes fixed P x P tiles (NumPy only).

The network contract: ``run_batch`` takes a float32 batch ``(tile_batch, 3, P, P)`` of RGB tiles on 0..255 and
returns ``(tile_batch, 3, P*s, P*s)`` float32 on 0..255 (P = 48 for the official models, s = the task's scale). Every
call has the same shape (the last batch is filled up with copies of its last tile, whose outputs are discarded), so a
graph or an exported model is compiled once, whatever the image size.

Both modes work the same way: ``make_plan`` gives the tile origins (in the padded LR image, in the order they run) and
a list of *regions*, each a rectangle of one tile's output added into the result. Stitching, in float32, in region
order (regions are sorted by tile)::

    acc[dst] += w[src] * out_tile[src]      (paper mode: acc[dst] += out_tile[src], i.e. w = 1)
    wsum[dst] += w[src]                      (paper mode: wsum[dst] += 1)
    result = acc / wsum, then cropped to (H*s, W*s)

Streaming (``restore_rows``): the tiles run in raster order, so ``acc`` and ``wsum`` are only held for the band of
output rows still open (at most one tile output, P*s rows, across the padded output width). A row is finished as soon
as no later tile touches it: divided and handed on (``band_schedule``), e.g. rounded into a uint8 image at once. Each
value gets the same float32 operations in the same order as with whole-image sums: the results are bit-identical.

Padding: a side below P is padded at the bottom/right to P by reflection without repeating the edge pixel
(``np.pad(mode="reflect")`` = OpenCV ``BORDER_REFLECT_101``, reflecting repeatedly when the pad is longer than the
side; a side of 1 pixel is repeated). Larger sides are never padded.

Modes (per axis of padded length L >= P, scale s; the 2-D tiles are the row origins x the column origins, row-major):

- ``fast`` (default for photos): n = ceil((L - P) / (P - P/4)) + 1 tiles (36 = the largest step for P = 48), origins
  ``round_half_up(i * (L - P) / (n - 1))`` computed in integers as ``(2*i*(L-P) + (n-1)) // (2*(n-1))`` (``[0]`` for
  n = 1): evenly spread, overlap >= P/4. Each tile adds its whole output with the separable weight
  ``w(u) = min(1, (u + 0.5) / R, (T - u - 0.5) / R)``, u = 0..T-1, T = P*s, R = (P/4)*s, in float64 cast to float32;
  2-D weight ``wy[:, None] * wx[None, :]`` in float32. Seamless: every tile fades out over R output pixels inside the
  overlap. 49 tiles for 256x256 (paper mode: 361 run, 397 in the official code).
- ``paper``: the official PyTorch ``forward_chop`` (padsize P, shave P/2, stride t = P/4; P must be a multiple of 4).
  Per axis: n = (L - P) // t + 1 grid origins t*i, cut = (L - P) % t, L' = L - cut; plus the origin L - P when
  cut != 0 (the official bottom/right strips and corner; when cut == 0 they coincide with the last grid tiles and
  are not run twice, nor are the official top/left strips, which are the first grid row/column). Output intervals
  per axis, in output pixels: grid tile i covers ``[lo_i, hi_i)`` with lo_i = 0 for i = 0 else (t*i + t)*s and
  hi_i = (t*i + P)*s for i = n-1 else (t*i + 3t)*s (the 2t*s centre, extended to the end at both ends), clipped to
  ``[0, L'*s - a)`` with a = ((P - cut)*s) // 2; the tile at origin L - P covers ``[L'*s - a, L*s)`` (the official
  splice at half the remaining overlap). A 2-D region is a row interval x a column interval of the same tile, with
  one exception: the official code writes its left strip over the first P*s output columns after its top strip, so
  the top band (rows ``[0, t*s)``) splits its row interval off tile row 0 and takes tile (0, 0) alone over columns
  ``[0, e)``, e = min(P*s, column split), the other column intervals of that band starting at e. Each output pixel is
  the mean of the 1, 2 or 4 tile outputs covering it, exactly the official sums / overlap counts.
  Equals the official code for any deterministic network (tested against a PyTorch rebuild of ``forward_chop``).

Plan JSON (``python -m src.tiler plan --height H --width W --scale S --mode M [--patch_size P]``), format
``ipt-tile-plan-1``; keys::

    format, mode, height, width, scale, patch_size      the request
    padded_height, padded_width                         LR size after padding (>= P each)
    tiles       [[y, x], ...]                           LR tile origins in the padded image, in run order
    regions     [[tile, src_y, src_x, h, w, dst_y, dst_x], ...]
                                                        tile output rectangle -> padded output position, in
                                                        stitching order
    weight      "uniform" (paper) or "ramp" (fast)
    ramp        R in output pixels (0 for uniform)
    weight_1d   the T float32 values of w(u) as decimal doubles (empty for uniform): compare as float32
"""
import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

MODES = ("fast", "paper")
PLAN_FORMAT = "ipt-tile-plan-1"


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles go and how their outputs are stitched (see the module docstring)."""
    mode: str
    height: int
    width: int
    scale: int
    patch_size: int
    padded_height: int
    padded_width: int
    tiles: tuple      # ((y, x), ...) LR origins in the padded image, run order
    regions: tuple    # ((tile, src_y, src_x, h, w, dst_y, dst_x), ...) in output pixels, sorted by tile
    ramp: int         # fast: blend ramp R in output pixels; paper: 0 (uniform weights)

    @property
    def tile_out(self) -> int:
        return self.patch_size * self.scale

    def weight_1d(self):
        """fast: the float32 ramp w(u), u = 0..T-1; paper: None (uniform)."""
        if not self.ramp:
            return None
        t, r = self.tile_out, self.ramp
        u = np.arange(t, dtype=np.float64)
        return np.minimum(1.0, np.minimum((u + 0.5) / r, (t - u - 0.5) / r)).astype(np.float32)

    def weight_2d(self):
        """fast: the float32 (T, T) tile weight ``wy[:, None] * wx[None, :]``; paper: None."""
        w = self.weight_1d()
        return None if w is None else w[:, None] * w[None, :]

    def to_json_dict(self) -> dict:
        w = self.weight_1d()
        return {"format": PLAN_FORMAT, "mode": self.mode, "height": self.height, "width": self.width,
                "scale": self.scale, "patch_size": self.patch_size, "padded_height": self.padded_height,
                "padded_width": self.padded_width, "tiles": [list(t) for t in self.tiles],
                "regions": [list(r) for r in self.regions], "weight": "ramp" if self.ramp else "uniform",
                "ramp": self.ramp, "weight_1d": [] if w is None else [float(v) for v in w]}


def _fast_origins(length, patch):
    """Evenly spread origins along an axis of ``length`` >= ``patch``, step <= patch - patch // 4."""
    span = length - patch
    if span == 0:
        return [0]
    n = -(-span // (patch - patch // 4)) + 1
    return [(2 * i * span + (n - 1)) // (2 * (n - 1)) for i in range(n)]


def _paper_segments(length, patch, scale):
    """Official forward_chop along one axis: [(origin, out_start, out_end), ...] in output pixels, origin order."""
    t = patch // 4
    n = (length - patch) // t + 1
    cut = (length - patch) % t
    split = (length - cut) * scale - ((patch - cut) * scale) // 2
    segments = []
    for i in range(n):
        lo = 0 if i == 0 else (t * i + t) * scale
        hi = (t * i + patch) * scale if i == n - 1 else (t * i + 3 * t) * scale
        hi = min(hi, split)
        if hi > lo:
            segments.append((t * i, lo, hi))
    segments.append((length - patch, split, length * scale))
    return segments


def make_plan(height, width, scale, patch_size=48, mode="fast") -> TilePlan:
    """The tiles and stitching regions for an LR image of ``height`` x ``width`` at ``scale`` (see module doc)."""
    for name, v in (("height", height), ("width", width), ("scale", scale), ("patch_size", patch_size)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if mode not in MODES:
        raise ValueError(f"tile mode {mode!r}; expected one of {', '.join(MODES)}")
    if patch_size % 4:
        raise ValueError(f"patch_size {patch_size} must be a multiple of 4")
    height, width, scale, patch = int(height), int(width), int(scale), int(patch_size)
    ph, pw = max(height, patch), max(width, patch)
    t_out = patch * scale
    tiles, regions = [], []
    if mode == "fast":
        for y in _fast_origins(ph, patch):
            for x in _fast_origins(pw, patch):
                regions.append((len(tiles), 0, 0, t_out, t_out, y * scale, x * scale))
                tiles.append((y, x))
        ramp = (patch // 4) * scale
    else:
        rows, cols = _paper_segments(ph, patch, scale), _paper_segments(pw, patch, scale)
        # The official code writes its left strip over the first P*s output columns after its top strip, so the top
        # band (the first P/4*s rows) takes tile (0, 0) alone up to column min(P*s, column split).
        band, band_end = (patch // 4) * scale, min(t_out, cols[-1][1])
        o0, lo0, hi0 = rows[0]
        rows = [(o0, lo0, band, True), (o0, band, hi0, False)] + [(o, lo, hi, False) for o, lo, hi in rows[1:]]
        band_cols = [(0, 0, band_end)] + [(o, max(lo, band_end), hi) for o, lo, hi in cols[1:] if hi > band_end]
        for y in sorted({o for o, _, _, _ in rows}):
            for x in sorted({o for o, _, _ in cols}):
                k = len(tiles)
                tiles.append((y, x))
                for oy, y0, y1, in_band in rows:
                    if oy != y:
                        continue
                    for ox, x0, x1 in (band_cols if in_band else cols):
                        if ox == x:
                            regions.append((k, y0 - y * scale, x0 - x * scale, y1 - y0, x1 - x0, y0, x0))
        ramp = 0
    return TilePlan(mode, height, width, scale, patch, ph, pw, tuple(tiles), tuple(regions), ramp)


def official_tile_count(height, width, patch_size=48) -> int:
    """How many tiles the official PyTorch ``forward_chop`` runs for an LR image (sides >= patch_size)."""
    t = patch_size // 4
    nh, nw = (height - patch_size) // t + 1, (width - patch_size) // t + 1
    return nh * nw + 1 + 2 * nw + 2 * nh  # grid, corner, top+bottom strips, left+right strips


def pad_to_patch(image, patch_size):
    """HWC ``image`` padded at the bottom/right to at least ``patch_size`` per side (reflect, see module doc)."""
    h, w = image.shape[:2]
    pad_h, pad_w = max(0, patch_size - h), max(0, patch_size - w)
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def band_schedule(plan):
    """When the streaming stitcher may finish rows, and how many rows it keeps (see ``restore_rows``).

    Returns ``(done, band_rows)``: after the tiles ``0..k`` are stitched, the padded output rows ``[0, done[k])``
    are final (no later tile touches them; ``done[-1]`` is the padded output height); ``band_rows`` is the most rows
    ever held between the first unfinished row and the lowest row touched so far.
    """
    out_h = plan.padded_height * plan.scale
    top = [out_h] * len(plan.tiles)
    bottom = [0] * len(plan.tiles)
    for k, _, _, h, w, dy, _ in plan.regions:
        if h > 0 and w > 0:
            top[k], bottom[k] = min(top[k], dy), max(bottom[k], dy + h)
    done, later = [0] * len(plan.tiles), out_h
    for k in range(len(plan.tiles) - 1, -1, -1):
        done[k] = later
        later = min(later, top[k])
    band_rows, first, lowest = 0, 0, 0
    for k in range(len(plan.tiles)):
        lowest = max(lowest, bottom[k])
        if done[k] > lowest:
            raise ValueError(f"tile plan leaves output rows {lowest}..{done[k] - 1} uncovered")
        band_rows = max(band_rows, lowest - first)
        first = done[k]
    return done, band_rows


def stitch_bytes(plan, tile_batch):
    """Bytes the stitcher holds for ``plan`` beyond its input: the float32 band (sum and weight sum), the tile
    batch and its output, the 2-D weight, and the row block it hands on (up to ``band_rows`` x the output width)
    with two float32 copies of it for its rounding."""
    _, band_rows = band_schedule(plan)
    t, p = plan.tile_out, plan.patch_size
    row = plan.padded_width * plan.scale
    return 4 * (band_rows * row * (3 + 1 + 3 * 3) + tile_batch * 3 * (p * p + t * t) + t * t)


def restore_rows(image, run_batch, write_rows, scale, patch_size=48, tile_batch=8, mode="fast", progress=None):
    """Restore an (H, W, 3) image on 0..255 (uint8, or float32; other types are converted to float32) and hand on
    its float32 (H*s, W*s, 3) result in row blocks, top to bottom: ``write_rows(y, rows)`` with ``rows`` float32
    ``(n, W*s, 3)`` = output rows ``y .. y+n-1``, each row once, as soon as no later tile touches it.

    Tiles run in plan order, ``run_batch`` on fixed-size batches; ``progress(done_tiles, total_tiles)`` after every
    batch. Only the band of rows still open is kept (float32 sums and weight sums, ``band_schedule``): every output
    value gets the same float32 additions in the same order as with whole-image sums, then one division.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"restore needs an HxWx3 image, got shape {image.shape}")
    if tile_batch < 1:
        raise ValueError(f"tile_batch must be >= 1, got {tile_batch}")
    if image.dtype != np.uint8:   # uint8 tiles become float32 in the batch, exactly
        image = image.astype(np.float32, copy=False)
    h, w = image.shape[:2]
    plan = make_plan(h, w, scale, patch_size, mode)
    done, band_rows = band_schedule(plan)
    padded = pad_to_patch(image, patch_size)
    p, t_out = plan.patch_size, plan.tile_out
    out_h, out_w = h * scale, w * scale
    acc = np.zeros((band_rows, plan.padded_width * scale, 3), np.float32)
    wsum = np.zeros(acc.shape[:2], np.float32)
    first, lowest = 0, 0     # acc row i is padded output row first + i; rows from lowest on are untouched (zero)
    weight = plan.weight_2d()
    by_tile = [[] for _ in plan.tiles]
    for region in plan.regions:
        by_tile[region[0]].append(region[1:])
    batch = np.empty((tile_batch, 3, p, p), np.float32)
    total = len(plan.tiles)
    for start in range(0, total, tile_batch):
        chunk = plan.tiles[start:start + tile_batch]
        for k, (y, x) in enumerate(chunk):
            batch[k] = padded[y:y + p, x:x + p].transpose(2, 0, 1)
        batch[len(chunk):] = batch[len(chunk) - 1]
        out = np.asarray(run_batch(batch))
        if out.shape != (tile_batch, 3, t_out, t_out):
            raise ValueError(f"run_batch returned shape {out.shape}; expected {(tile_batch, 3, t_out, t_out)}")
        out = out.astype(np.float32, copy=False)
        for k in range(len(chunk)):
            tile = out[k].transpose(1, 2, 0)
            for sy, sx, rh, rw, dy, dx in by_tile[start + k]:
                if rh <= 0 or rw <= 0:
                    continue
                src = tile[sy:sy + rh, sx:sx + rw]
                by = dy - first
                lowest = max(lowest, dy + rh)
                if weight is None:
                    acc[by:by + rh, dx:dx + rw] += src
                    wsum[by:by + rh, dx:dx + rw] += np.float32(1)
                else:
                    wv = weight[sy:sy + rh, sx:sx + rw]
                    acc[by:by + rh, dx:dx + rw] += src * wv[..., None]
                    wsum[by:by + rh, dx:dx + rw] += wv
            finished = done[start + k]
            if finished > first:
                n = finished - first
                if first < out_h:
                    m = min(finished, out_h) - first
                    write_rows(first, acc[:m, :out_w] / wsum[:m, :out_w, None])
                kept = lowest - finished
                acc[:kept], wsum[:kept] = acc[n:n + kept], wsum[n:n + kept]
                acc[kept:lowest - first], wsum[kept:lowest - first] = 0, 0
                first = finished
        if progress is not None:
            progress(start + len(chunk), total)


class RowsToArray:
    """A ``write_rows`` that keeps the float32 rows of an output ``height`` rows tall in one array, ``.array``."""

    def __init__(self, height):
        self.height, self.array = height, None

    def __call__(self, y, rows):
        if self.array is None:
            self.array = np.empty((self.height, rows.shape[1], 3), np.float32)
        self.array[y:y + len(rows)] = rows


def restore(image, run_batch, scale, patch_size=48, tile_batch=8, mode="fast", progress=None):
    """float32 (H, W, 3) on 0..255 (or uint8) -> float32 (H*s, W*s, 3): ``restore_rows`` collected into one array."""
    out = RowsToArray(np.shape(image)[0] * scale)
    restore_rows(image, run_batch, out, scale, patch_size, tile_batch, mode, progress)
    return out.array


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m src.tiler", description="Dump a tile plan as JSON.")
    sub = parser.add_subparsers(dest="command", required=True)
    plan_cmd = sub.add_parser("plan", help="print the plan for an LR image size")
    plan_cmd.add_argument("--height", type=int, required=True)
    plan_cmd.add_argument("--width", type=int, required=True)
    plan_cmd.add_argument("--scale", type=int, required=True)
    plan_cmd.add_argument("--mode", choices=MODES, default="fast")
    plan_cmd.add_argument("--patch_size", type=int, default=48)
    args = parser.parse_args(argv)
    try:
        plan = make_plan(args.height, args.width, args.scale, args.patch_size, args.mode)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(plan.to_json_dict(), sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
