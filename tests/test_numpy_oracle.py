"""The NumPy oracle (tests/numpy_ipt.py) reproduces real PyTorch IPT outputs.

The fixtures' ``output_<t>`` were computed by torch (scripts/make_torch_fixtures.py); matching them proves the oracle
follows torch's conventions, so other tests can trust it. If torch is importable, freshly built models are checked too.
"""
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from numpy_ipt import RGB_MEAN, ipt_forward

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPT = Path(__file__).parent.parent / "scripts" / "make_torch_fixtures.py"
NAMES = ["ipt_tiny_pretrain_zip", "ipt_tiny_sr_x4_legacy", "ipt_tiny_denoise_legacy", "ipt_tiny_sr_x3_outbias_zip"]
TOL = 1e-3  # max abs difference on the 0..255 scale


def load(name):
    data = np.load(FIXTURES / f"{name}.npz")
    sd = {k: data[k] for k in data.files if k.split(".")[0] in ("sub_mean", "add_mean", "head", "body", "tail")}
    return sd, data


def run(sd, data, task):
    return ipt_forward(sd, data["input"], task, [int(s) for s in data["scales"]], int(data["num_heads"]))


@pytest.mark.parametrize("name", NAMES)
def test_oracle_matches_torch_outputs(name):
    sd, data = load(name)
    n, _, h, w = data["input"].shape
    for task, scale in enumerate(data["scales"]):
        out = run(sd, data, task)
        assert out.shape == (n, 3, h * scale, w * scale)
        assert np.abs(out - data[f"output_{task}"]).max() < TOL, (task, np.abs(out - data[f"output_{task}"]).max())


@pytest.mark.parametrize("name", NAMES)
def test_fixture_mean_shift_is_the_official_one(name):
    """The oracle applies MeanShift from rgb_range; the checkpoints' frozen convs say the same."""
    sd, _ = load(name)
    eye = np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)
    for key, sign in (("sub_mean", -1), ("add_mean", 1)):
        np.testing.assert_array_equal(sd[f"{key}.weight"], eye)
        np.testing.assert_allclose(sd[f"{key}.bias"], sign * 255 * RGB_MEAN, rtol=1e-6)


@pytest.mark.parametrize("name,change", [
    ("ipt_tiny_sr_x3_outbias_zip", "drop out_proj biases"),
    ("ipt_tiny_pretrain_zip", "zero task queries"),
    ("ipt_tiny_denoise_legacy", "zero positional encoding"),
    ("ipt_tiny_sr_x4_legacy", "swap q and k rows"),
])
def test_fixtures_detect_convention_errors(name, change):
    """Each part of the model moves the output well beyond the tolerance, so a wrong convention cannot pass."""
    sd, data = load(name)
    dim = sd["body.position_encoding.pe.weight"].shape[1]
    if change == "drop out_proj biases":
        sd = {k: v for k, v in sd.items() if not k.endswith("out_proj.bias")}
    elif change == "zero task queries":
        sd["body.query_embed.weight"] = np.zeros_like(sd["body.query_embed.weight"])
    elif change == "zero positional encoding":
        sd["body.position_encoding.pe.weight"] = np.zeros_like(sd["body.position_encoding.pe.weight"])
    else:
        for key in [k for k in sd if k.endswith("in_proj_weight")]:
            w = sd[key]
            sd[key] = np.concatenate([w[dim:2 * dim], w[:dim], w[2 * dim:]])
    assert np.abs(run(sd, data, 0) - data["output_0"]).max() > 100 * TOL


def builder():
    pytest.importorskip("torch")
    return load_script(SCRIPT)


def test_fresh_torch_model_matches_oracle():
    m = builder()
    scales = [4, 1, 3]
    model = m.build_model(scales, num_layers=2, out_proj_bias=True, seed=11)
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    x = m.make_input()
    for task in range(len(scales)):
        out = ipt_forward(sd, x, task, scales, m.NUM_HEADS)
        assert np.abs(out - m.torch_forward(model, x, task)).max() < TOL


@pytest.mark.parametrize("scales,count", [([4], 317), ([2], 315), ([3], 315), ([1], 313), ([2, 3, 4, 1, 1, 1], 381)])
def test_builder_has_the_official_keys(scales, count):
    """Key counts of the official 12-layer models (reference notes s2.1) and the x4 key names."""
    keys = list(builder().build_model(scales, num_layers=12).state_dict())
    assert len(keys) == count
    if scales == [4]:
        assert keys[:4] == ["sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias"]
        assert {"head.0.2.body.2.bias", "body.linear_encoding.weight", "body.mlp_head.3.weight",
                "body.query_embed.weight", "body.encoder.layers.11.self_attn.in_proj_weight",
                "body.encoder.layers.0.self_attn.out_proj.weight",
                "body.decoder.layers.11.multihead_attn.in_proj_weight",
                "body.decoder.layers.3.norm3.bias", "body.position_encoding.position_ids",
                "body.position_encoding.pe.weight", "tail.0.0.0.weight", "tail.0.0.2.bias",
                "tail.0.1.weight"} <= set(keys)
        assert not any(k.endswith(("in_proj_bias", "out_proj.bias")) for k in keys)


def test_fixture_script_reproduces_the_committed_files(tmp_path):
    """What scripts/make_torch_fixtures.py says is reproducible: the .pt files byte for byte, the .npz weights and
    input bit for bit, torch's outputs within the tests' tolerance (their last bits depend on the CPU's kernels)."""
    m = builder()
    assert m.main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        assert (tmp_path / f"{name}.pt").read_bytes() == (FIXTURES / f"{name}.pt").read_bytes(), name
        fresh, committed = np.load(tmp_path / f"{name}.npz"), np.load(FIXTURES / f"{name}.npz")
        assert sorted(fresh.files) == sorted(committed.files)
        for key in committed.files:
            if key.startswith("output_"):
                assert np.abs(fresh[key] - committed[key]).max() < TOL, (name, key)
            else:
                np.testing.assert_array_equal(fresh[key], committed[key], err_msg=f"{name} {key}")
