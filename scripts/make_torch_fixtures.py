"""Build tiny official-architecture IPT checkpoints with real PyTorch, plus their expected outputs (tests/fixtures/).

The torch modules below reproduce the official model (huawei-noah/Pretrained-IPT ``model/ipt.py``) closely enough that
their state_dict keys, shapes and forward pass are the official ones, at a tiny size: n_feats 4 (token dim 36),
3 heads, 48x48 input, 3x3 patches (256 tokens). Written for each fixture ``<name>``:

* ``<name>.pt``: the state_dict, saved by ``torch.save`` (zip format, or the legacy format for ``*_legacy``);
* ``<name>.npz``: every state_dict entry under its torch key, ``input`` (float32 (2,3,48,48) in [0,255]),
  ``output_<t>`` (the torch forward for task index t, float32), ``scales`` and ``num_heads``.

Needs torch (nothing under src/ does; the committed files were written with torch 2.13.0+cpu). Run from the
repository root, in any environment with torch and NumPy (README.md, "Tests", says how to get torch):

    python scripts/make_torch_fixtures.py [--out DIR]     # default: tests/fixtures

What is reproducible, with the same torch version (each file is written to a temporary file, then renamed):
* the ``.pt`` files, byte for byte, on any machine;
* in the ``.npz`` files, the weights and the input, bit for bit, on any machine; torch's outputs (``output_<t>``) bit
  for bit on reruns on one machine, but not across CPUs: torch's float32 kernels differ with the instruction set, and
  so do the outputs' last bits (up to about 1e-4 on 0..255, against the tests' tolerance of 1e-3).
tests/test_numpy_oracle.py regenerates the fixtures and checks exactly this when torch is installed.
"""
import argparse
import io
import math
import os
import pickle
import pickletools
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
RGB_MEAN = (0.4488, 0.4371, 0.4040)
N_FEATS, NUM_HEADS, PATCH_SIZE, PATCH_DIM = 4, 3, 48, 3
BATCH = 2

# name -> (task scales, encoder/decoder layers, legacy format, out_proj biases as torch 1.5-1.7 wrote them)
FIXTURES = {
    "ipt_tiny_pretrain_zip": ([2, 3, 4, 1, 1, 1], 1, False, False),
    "ipt_tiny_sr_x4_legacy": ([4], 2, True, False),
    "ipt_tiny_denoise_legacy": ([1], 1, True, False),
    "ipt_tiny_sr_x3_outbias_zip": ([3], 1, False, True),
}


def conv(cin, cout, k):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv adding sign * rgb_range * RGB_MEAN (std 1)."""

    def __init__(self, rgb_range, sign):
        super().__init__(3, 3, 1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(RGB_MEAN)
        self.requires_grad_(False)


class ResBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(conv(n, n, 5), nn.ReLU(), conv(n, n, 5))

    def forward(self, x):
        return self.body(x) + x


def upsampler(scale, n):
    """Official Upsampler: x2 stages for powers of two (none for scale 1), one x3 stage for scale 3."""
    if scale == 3:
        return nn.Sequential(conv(n, 9 * n, 3), nn.PixelShuffle(3))
    layers = []
    for _ in range(int(math.log2(scale))):
        layers += [conv(n, 4 * n, 3), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


def attention(dim, heads, out_proj_bias):
    attn = nn.MultiheadAttention(dim, heads, bias=False)
    if out_proj_bias:  # torch 1.5-1.7 always gave out_proj a bias, even with bias=False
        attn.out_proj = nn.modules.linear.NonDynamicallyQuantizableLinear(dim, dim, bias=True)
    return attn


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, out_proj_bias):
        super().__init__()
        self.self_attn = attention(dim, heads, out_proj_bias)
        self.linear1, self.linear2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x):
        a = self.norm1(x)
        x = x + self.self_attn(a, a, a, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm2(x))))


class DecoderLayer(nn.Module):
    def __init__(self, dim, heads, out_proj_bias):
        super().__init__()
        self.self_attn = attention(dim, heads, out_proj_bias)
        self.multihead_attn = attention(dim, heads, out_proj_bias)
        self.linear1, self.linear2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, memory, query):
        a = self.norm1(x)
        x = x + self.self_attn(a + query, a + query, a, need_weights=False)[0]
        b = self.norm2(x)
        x = x + self.multihead_attn(b + query, memory, memory, need_weights=False)[0]
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class Stack(nn.Module):
    """Holds ``layers`` only, so that keys read ``encoder.layers.{i}`` / ``decoder.layers.{i}``."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class LearnedPositionalEncoding(nn.Module):
    def __init__(self, num_tokens, dim):
        super().__init__()
        self.pe = nn.Embedding(num_tokens, dim)
        self.register_buffer("position_ids", torch.arange(num_tokens).expand((1, -1)))  # (1, L) stride (0, 1)

    def forward(self):
        return self.pe(self.position_ids)


class VisionTransformer(nn.Module):
    def __init__(self, num_queries, num_layers, out_proj_bias, n_feats=N_FEATS, num_heads=NUM_HEADS):
        super().__init__()
        dim = n_feats * PATCH_DIM ** 2
        self.num_tokens = (PATCH_SIZE // PATCH_DIM) ** 2
        self.linear_encoding = nn.Linear(dim, dim)
        self.mlp_head = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Dropout(0.0), nn.ReLU(), nn.Linear(4 * dim, dim),
                                      nn.Dropout(0.0))
        self.query_embed = nn.Embedding(num_queries, self.num_tokens * dim)
        self.encoder = Stack([EncoderLayer(dim, num_heads, out_proj_bias) for _ in range(num_layers)])
        self.decoder = Stack([DecoderLayer(dim, num_heads, out_proj_bias) for _ in range(num_layers)])
        self.position_encoding = LearnedPositionalEncoding(self.num_tokens, dim)

    def forward(self, f, task):
        n, _, h, w = f.shape
        x = F.unfold(f, PATCH_DIM, stride=PATCH_DIM).permute(2, 0, 1)        # (L, N, C*9), sequence-first
        x = self.linear_encoding(x) + x
        query = self.query_embed.weight[task].view(self.num_tokens, 1, -1)   # per-token task query, (L, 1, E)
        x = x + self.position_encoding().transpose(0, 1)
        for layer in self.encoder.layers:
            x = layer(x)
        memory = x
        for layer in self.decoder.layers:
            x = layer(x, memory, query)
        x = self.mlp_head(x) + x
        return F.fold(x.permute(1, 2, 0), (h, w), PATCH_DIM, stride=PATCH_DIM)


class IPT(nn.Module):
    """Tiny by default; ``IPT([2], 12, n_feats=64, num_heads=12)`` is the official sr_x2 model (the benchmark's
    PyTorch reference)."""

    def __init__(self, scales, num_layers, out_proj_bias=False, rgb_range=255, n_feats=N_FEATS, num_heads=NUM_HEADS):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range, -1)
        self.add_mean = MeanShift(rgb_range, 1)
        self.head = nn.ModuleList(nn.Sequential(conv(3, n_feats, 3), ResBlock(n_feats), ResBlock(n_feats))
                                  for _ in scales)
        self.body = VisionTransformer(len(scales), num_layers, out_proj_bias, n_feats, num_heads)
        self.tail = nn.ModuleList(nn.Sequential(upsampler(s, n_feats), conv(n_feats, 3, 3)) for s in scales)

    def forward(self, x, task):
        x = self.head[task](self.sub_mean(x))
        x = self.body(x, task) + x
        return self.add_mean(self.tail[task](x))


def build_model(scales, num_layers, out_proj_bias=False, seed=0):
    """A tiny IPT with every trainable tensor random and non-trivial (activations stay O(1..100) on 0..255 input)."""
    torch.manual_seed(seed)
    model = IPT(scales, num_layers, out_proj_bias)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
            elif isinstance(module, (EncoderLayer, DecoderLayer)):
                # self-attention sharper than the xavier default; residual branches comparable to the tokens (~30)
                module.self_attn.in_proj_weight.mul_(3.0)
                module.self_attn.out_proj.weight.mul_(4.0)
                module.linear2.weight.mul_(6.0)
            if isinstance(module, nn.MultiheadAttention) and module.out_proj.bias is not None:
                module.out_proj.bias.uniform_(-2.0, 2.0)
        model.body.position_encoding.pe.weight.mul_(10.0)   # positions matter next to tokens of magnitude ~30
    return model.eval()


def make_input():
    """Deterministic (BATCH,3,48,48) float32 test image in [0,255]: smooth colour waves plus noise."""
    rng = np.random.default_rng(20210627)
    yy, xx = np.mgrid[0:PATCH_SIZE, 0:PATCH_SIZE] / (PATCH_SIZE - 1)
    img = np.empty((BATCH, 3, PATCH_SIZE, PATCH_SIZE))
    for n in range(BATCH):
        for c in range(3):
            fx, fy, phase = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
            img[n, c] = 127.5 + 90 * np.sin(2 * np.pi * fx * xx + phase) * np.cos(2 * np.pi * fy * yy)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.float32)


def torch_forward(model, x, task):
    with torch.no_grad():
        return model(torch.from_numpy(x), task).numpy()


def _canonical_legacy(raw, state_dict):
    """Rename the storages of a legacy-format file "0", "1", ... (first use in ``state_dict``) and reorder them.

    torch's legacy writer keys each storage by its C++ address, which changes from run to run; renaming them makes
    the file reproducible. Protocol-2 pickles have no length-prefixed frames, so strings may change length.
    """
    order = {}
    for t in state_dict.values():
        order.setdefault(str(t.untyped_storage()._cdata), (str(len(order)), t.element_size()))
    f = io.BytesIO(raw)
    for _ in range(3):                               # magic number, protocol version, sys_info
        pickle.load(f)
    out = bytearray(raw[:f.tell()])
    ops = list(pickletools.genops(f))                # the object pickle, up to and including STOP
    ends = [pos for _, _, pos in ops[1:]] + [f.tell()]
    for (op, arg, pos), end in zip(ops, ends):
        if op.name == "BINUNICODE" and arg in order:
            new = order[arg][0].encode()
            out += b"X" + len(new).to_bytes(4, "little") + new
        else:
            out += raw[pos:end]
    blocks = {}
    for key in pickle.load(f):
        count = f.read(8)
        blocks[order[key][0]] = count + f.read(int.from_bytes(count, "little") * order[key][1])
    if f.read():
        raise RuntimeError("unexpected bytes after the last storage")
    keys = sorted(blocks)                            # torch lists keys sorted, as strings
    out += pickle.dumps(keys, protocol=2)
    for key in keys:
        out += blocks[key]
    return bytes(out)


def _write_atomic(path, write):
    """Call ``write(tmp_path)`` for a temporary file named like ``path`` (torch names the zip folder after it),
    then move it into place."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_path = Path(tmp) / path.name
        write(tmp_path)
        os.replace(tmp_path, path)


def _write_npz(path, arrays):
    """np.savez with fixed timestamps (np.savez stamps the current time), compressed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            with zf.open(zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def _save_pt(path, state_dict, legacy):
    if legacy:
        buf = io.BytesIO()
        torch.save(state_dict, buf, _use_new_zipfile_serialization=False)
        path.write_bytes(_canonical_legacy(buf.getvalue(), state_dict))
    else:
        torch.save(state_dict, path)
    reloaded = torch.load(path, weights_only=True)
    if list(reloaded) != list(state_dict) or not all(torch.equal(reloaded[k], v) for k, v in state_dict.items()):
        raise RuntimeError(f"{path}: torch does not read back what was saved")


def make_fixture(name, seed, out_dir=FIXTURE_DIR):
    scales, num_layers, legacy, out_proj_bias = FIXTURES[name]
    model = build_model(scales, num_layers, out_proj_bias, seed)
    state_dict = model.state_dict()
    x = make_input()
    arrays = {k: v.numpy() for k, v in state_dict.items()}
    arrays.update(input=x, scales=np.array(scales), num_heads=np.array(NUM_HEADS))
    for task in range(len(scales)):
        arrays[f"output_{task}"] = torch_forward(model, x, task)
    _write_atomic(out_dir / f"{name}.pt", lambda p: _save_pt(p, state_dict, legacy))
    _write_atomic(out_dir / f"{name}.npz", lambda p: _write_npz(p, arrays))


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the tiny PyTorch IPT fixtures and their .npz companions.")
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR, help="folder to write into (default: tests/fixtures)")
    out_dir = parser.parse_args(argv).out
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)   # no thread-count-dependent float32 summation order
    for seed, name in enumerate(FIXTURES):
        make_fixture(name, seed, out_dir)
        for suffix in (".pt", ".npz"):
            path = out_dir / (name + suffix)
            print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
