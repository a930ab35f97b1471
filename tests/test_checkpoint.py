"""Loading the official weights exactly, and our self-describing checkpoints.

The fixtures are real PyTorch files (scripts/make_torch_fixtures.py) of tiny official-architecture models; their
.npz companions hold the same weights as torch saw them, an input and torch's own outputs. The oracle is the
independent NumPy forward in tests/numpy_ipt.py.
"""
from pathlib import Path

import numpy as np
import mindspore as ms
import pytest

from numpy_ipt import ipt_forward
from src.checkpoint import official
from src.checkpoint.loader import (CONFIG_KEY, FORMAT_KEY, FORMAT_VERSION, assign_strict, build_model, load_model,
                                   read_weights, save_checkpoint, select_tasks, split_packed_projections)
from src.errors import CheckpointError, ConfigError
from src.tasks import OFFICIAL_PRETRAIN_ORDER

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-3  # on the 0..255 scale
# fixture -> (task hint, task names the loader must give its heads)
CASES = {
    "ipt_tiny_pretrain_zip": (None, OFFICIAL_PRETRAIN_ORDER),
    "ipt_tiny_sr_x4_legacy": (None, ("sr_x4",)),
    "ipt_tiny_denoise_legacy": ("denoise_30", ("denoise_30",)),
    "ipt_tiny_sr_x3_outbias_zip": (None, ("sr_x3",)),
}
GRAPH_FORMS = ("native", "cpu")


def fixture(name):
    data = np.load(FIXTURES / f"{name}.npz")
    sd = {k: data[k] for k in data.files if k.split(".")[0] in ("head", "body", "tail", "sub_mean", "add_mean")}
    return sd, data


def run_task(ipt, task, x):
    return ipt.task_net(task)(ms.Tensor(x.astype(np.float32))).asnumpy()


@pytest.mark.parametrize("form", GRAPH_FORMS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_official_pytorch_weights_match_oracle(name, form):
    hint, tasks = CASES[name]
    sd, data = fixture(name)
    ipt, weights = load_model(FIXTURES / f"{name}.pt", task=hint, num_heads=int(data["num_heads"]), graph_form=form)
    assert ipt.graph_form == form
    assert weights.source_format == "pytorch"
    assert weights.config.tasks == tasks
    assert weights.config.out_proj_bias == ("outbias" in name)
    x = data["input"]
    for t, task in enumerate(tasks):
        ours = run_task(ipt, task, x)
        oracle = ipt_forward(sd, x, t, list(data["scales"]), int(data["num_heads"]))
        assert ours.shape == oracle.shape
        assert np.abs(ours - oracle).max() < TOL, (task, np.abs(ours - oracle).max())
        assert np.abs(ours - data[f"output_{t}"]).max() < TOL  # and real torch agrees too


@pytest.mark.parametrize("form", GRAPH_FORMS)
@pytest.mark.parametrize("name", ["ipt_tiny_sr_x3_outbias_zip", "ipt_tiny_denoise_legacy"])
def test_batch_one_graphs_match_torch(name, form):
    """Each sample alone (a batch-1 graph, the benchmark's and a one-tile-at-a-time restoration's) reproduces torch's
    output for it, with and without the out-projection bias, in both graph forms (the cpu form's attention has a
    form of its own for one image)."""
    hint, (task, *_) = CASES[name]
    sd, data = fixture(name)
    ipt, _ = load_model(FIXTURES / f"{name}.pt", task=hint, num_heads=int(data["num_heads"]), graph_form=form)
    for i in range(len(data["input"])):
        ours = run_task(ipt, task, data["input"][i:i + 1])
        assert np.abs(ours - data["output_0"][i:i + 1]).max() < TOL, (i, np.abs(ours - data["output_0"][i:i + 1]).max())


@pytest.mark.parametrize("form", GRAPH_FORMS)
@pytest.mark.parametrize("batch", [1, 2])
def test_every_gradient_matches_the_float64_oracle(batch, form):
    """The gradient of a loss with respect to every parameter of a 2+2-layer model (head, body layer by layer, tail)
    agrees with central differences of the float64 NumPy oracle, along a random direction per PyTorch tensor, mapped
    to our layout by the loader's own renaming and splitting. MindSpore 2.10 once gave decoder layer 1 the
    in-projection gradient of layer 0 (rows taken with ``mint.narrow``); this checks the layers one by one. Both
    graph forms: the native one with MindSpore's own gradients, the cpu one with its hand-written backward passes;
    batch 1 and 2: the cpu form's attention has a form for one image and one for several."""
    sd, data = fixture("ipt_tiny_sr_x4_legacy")
    heads, scales = int(data["num_heads"]), [int(s) for s in data["scales"]]
    ipt, _ = load_model(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=heads, graph_form=form)
    assert len(data["input"]) >= batch
    x = data["input"][:batch]
    target = np.random.default_rng(3).uniform(0, 255, data["output_0"][:batch].shape)

    def oracle_loss(state):
        return float(np.mean((ipt_forward(state, x, 0, scales, heads) - target) ** 2) / 255 ** 2)

    net = ipt.task_net("sr_x4")
    loss = lambda inp, tgt: ((net(inp) - tgt) ** 2).mean() / 255 ** 2  # noqa: E731
    params = net.trainable_params()
    grads = {p.name: g.asnumpy().astype(np.float64) for p, g in zip(params, ms.grad(loss, grad_position=None,
             weights=params)(ms.Tensor(x), ms.Tensor(target.astype(np.float32))))}
    fixed = ("sub_mean.", "add_mean.", "body.position_encoding.position_ids")  # constants of our graph
    rng = np.random.default_rng(4)
    checked = set()
    for key in sorted(k for k in sd if not k.startswith(fixed)):
        direction = rng.normal(size=sd[key].shape)
        probe = {k: (v if k.startswith(fixed) else np.zeros_like(v)) for k, v in sd.items()}
        probe[key] = direction
        ours = split_packed_projections(official.from_torch_names(probe, "probe", None, heads)[1], "probe")
        ours = {k: np.asarray(v, np.float64) for k, v in ours.items() if np.any(v)}
        analytic = sum(float((grads[k] * v).sum()) for k, v in ours.items())
        scale = np.sqrt(sum(float((grads[k] ** 2).sum()) for k in ours))  # the spread of <gradient, direction>
        eps = 1e-4
        plus, minus = dict(sd), dict(sd)
        plus[key], minus[key] = sd[key] + eps * direction, sd[key] - eps * direction
        numeric = (oracle_loss(plus) - oracle_loss(minus)) / (2 * eps)
        assert abs(analytic - numeric) < 0.02 * max(abs(numeric), scale) + 1e-7, (key, analytic, numeric, scale)
        checked |= set(ours)
    assert checked == set(grads)  # every trainable parameter of the task graph was probed


def test_inferred_configuration():
    cfg = read_weights(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3).config
    assert (cfg.n_feats, cfg.patch_size, cfg.patch_dim, cfg.num_encoder_layers, cfg.num_decoder_layers,
            cfg.ffn_dim, cfg.rgb_range) == (4, 48, 3, 2, 2, 144, 255.0)


def test_assumed_heads_of_an_official_file_are_logged_once(tmp_path, caplog):
    """Official files do not store the number of heads: without --num_heads the loader takes 12 and says so in one
    line; with it, or for our own checkpoints (which store it), nothing is said."""
    caplog.set_level("INFO", logger="ipt")
    path = FIXTURES / "ipt_tiny_sr_x4_legacy.pt"
    assert read_weights(path).config.num_heads == 12  # the tiny model's 36-value tokens split into 12 heads too
    lines = [r.getMessage() for r in caplog.records if "attention heads" in r.getMessage()]
    assert lines == [f"{path}: official files do not store the number of attention heads; assuming 12, the official "
                     "value (--num_heads to change)"]
    caplog.clear()
    ipt, _ = load_model(path, num_heads=3)
    save_checkpoint(ipt, tmp_path / "ours.ckpt")
    read_weights(tmp_path / "ours.ckpt")
    assert not [r for r in caplog.records if "attention heads" in r.getMessage()]


def test_scale_one_tail_needs_a_task():
    with pytest.raises(ConfigError, match="derain, denoise_30 or denoise_50; say which with --task"):
        read_weights(FIXTURES / "ipt_tiny_denoise_legacy.pt", num_heads=3)
    with pytest.raises(ConfigError, match="task 'sr_x2' has scale 2 but the checkpoint's tail for it has scale 1"):
        read_weights(FIXTURES / "ipt_tiny_denoise_legacy.pt", task="sr_x2", num_heads=3)


# MindSpore model-zoo names, written from reference §2.2 independently of the loader's own renaming table.
def zoo_name(torch_name, generation):
    name = torch_name
    if name.endswith("in_proj_weight"):
        name = name.replace("in_proj_weight", "in_proj_layer")
    for n in (1, 2, 3):
        for old, new in (("weight", "gamma"), ("bias", "beta")):
            if f".norm{n}.{old}" in name:
                wrap = "layernorm." if generation == "current" else ""
                name = name.replace(f".norm{n}.{old}", f".norm{n}.{wrap}{new}")
    name = name.replace("query_embed.weight", "query_embed.embedding_table")
    name = name.replace("pe.weight", "pe.embedding_table")
    parts = name.split(".")
    if parts[0] == "tail" and parts[2] == "0":  # tail.t.0.k.w -> tail.t.0.net.(k//2).conv.w
        name = f"tail.{parts[1]}.0.net.{int(parts[3]) // 2}.conv.{parts[4]}"
    return name


def write_zoo_ckpt(path, sd, generation="current", extra=None):
    """A checkpoint as the model zoo's trainer writes it: `model.` prefix, Adam moments and counters beside."""
    entries = []
    for k, v in sd.items():
        if k.startswith(("sub_mean", "add_mean")) and generation == "current":
            continue  # the current port has no MeanShift parameters; r1.2 had them
        if k.endswith("position_ids"):
            continue
        name = "model." + zoo_name(k, generation)
        entries.append({"name": name, "data": ms.Tensor(v.astype(np.float32))})
        entries.append({"name": "moment1." + name, "data": ms.Tensor(np.zeros_like(v, np.float32))})
    entries += [{"name": "global_step", "data": ms.Tensor(np.array([7], np.int32))},
                {"name": "learning_rate", "data": ms.Tensor(np.array(2e-5, np.float32))}]
    entries += [{"name": k, "data": ms.Tensor(v)} for k, v in (extra or {}).items()]
    ms.save_checkpoint(entries, str(path))


@pytest.mark.parametrize("generation", ["current", "r1.2"])
def test_mindspore_zoo_checkpoint_loads_exactly(tmp_path, generation):
    sd, data = fixture("ipt_tiny_sr_x4_legacy")
    path = tmp_path / "ipt_zoo.ckpt"
    write_zoo_ckpt(path, sd, generation)
    zoo = read_weights(path, num_heads=3)
    ref = read_weights(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3)
    assert zoo.source_format == "mindspore-zoo" and zoo.config == ref.config
    assert sorted(zoo.params) == sorted(ref.params)
    for k in ref.params:
        np.testing.assert_array_equal(zoo.params[k], ref.params[k])


def test_unmapped_keys_are_errors(tmp_path):
    sd, _ = fixture("ipt_tiny_sr_x4_legacy")
    path = tmp_path / "ipt_zoo_extra.ckpt"
    write_zoo_ckpt(path, sd, extra={"model.body.extra_norm.gamma": np.ones(36, np.float32)})
    with pytest.raises(CheckpointError, match=r"map to nothing in IPT: body\.extra_norm\.gamma"):
        read_weights(path, num_heads=3)


def test_partial_out_proj_bias_is_an_error(tmp_path):
    sd, _ = fixture("ipt_tiny_sr_x3_outbias_zip")
    sd = {k: v for k, v in sd.items() if k != "body.encoder.layers.0.self_attn.out_proj.bias"}
    path = tmp_path / "ipt_zoo_partial.ckpt"
    write_zoo_ckpt(path, sd)
    with pytest.raises(CheckpointError, match=r"missing \['body\.encoder\.0\.self_attn\.out_proj\.bias'\]"):
        load_model(path, num_heads=3)


def test_query_rows_must_match_heads(tmp_path):
    sd, _ = fixture("ipt_tiny_sr_x4_legacy")
    sd["body.query_embed.weight"] = np.concatenate([sd["body.query_embed.weight"]] * 2)
    path = tmp_path / "two_queries.ckpt"
    write_zoo_ckpt(path, sd)
    with pytest.raises(CheckpointError, match="query_embed has 2 rows .* 1 head"):
        read_weights(path, num_heads=3)


def test_our_checkpoint_describes_itself(tmp_path):
    ipt, weights = load_model(FIXTURES / "ipt_tiny_pretrain_zip.pt", num_heads=3)
    path = tmp_path / "ours.ckpt"
    save_checkpoint(ipt, path, extra={"epoch": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["ours.ckpt"]  # no temporary file left behind
    again = read_weights(path)  # no size, head or task flags
    assert again.source_format == "ours" and again.config == weights.config and again.extra["epoch"] == 3
    for k, v in weights.params.items():
        np.testing.assert_array_equal(again.params[k], v)
    with pytest.raises(ConfigError, match="saved with num_heads 3"):
        read_weights(path, num_heads=12)


def test_packed_decoder_projections_are_split_into_the_blocks_the_cells_hold(tmp_path):
    """The official files pack W_q | W_k | W_v in one in_proj_weight, as did our checkpoints before the decoder's
    attention cells held row blocks: both load into the blocks, rows in order, and compute the same output."""
    sd, data = fixture("ipt_tiny_sr_x4_legacy")
    ipt, weights = load_model(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3)
    packed = sd["body.decoder.layers.1.self_attn.in_proj_weight"]
    d = packed.shape[1]
    np.testing.assert_array_equal(weights.params["body.decoder.1.self_attn.in_proj_weight_qk"], packed[:2 * d])
    np.testing.assert_array_equal(weights.params["body.decoder.1.self_attn.in_proj_weight_v"], packed[2 * d:])
    packed = sd["body.decoder.layers.1.multihead_attn.in_proj_weight"]
    np.testing.assert_array_equal(weights.params["body.decoder.1.cross_attn.in_proj_weight_q"], packed[:d])
    np.testing.assert_array_equal(weights.params["body.decoder.1.cross_attn.in_proj_weight_kv"], packed[d:])
    assert weights.params["body.encoder.1.self_attn.in_proj_weight"].shape == (3 * d, d)  # the encoder keeps it whole

    # an older checkpoint of ours (format 1): the decoder's projections packed again
    path = tmp_path / "ours.ckpt"
    save_checkpoint(ipt, path)
    raw = ms.load_checkpoint(str(path))
    old = [{"name": k, "data": v} for k, v in raw.items() if "in_proj_weight_" not in k and not isinstance(v, str)]
    for i in range(2):
        for cell, blocks in (("self_attn", ("qk", "v")), ("cross_attn", ("q", "kv"))):
            rows = [raw[f"body.decoder.{i}.{cell}.in_proj_weight_{b}"].asnumpy() for b in blocks]
            old.append({"name": f"body.decoder.{i}.{cell}.in_proj_weight", "data": ms.Tensor(np.concatenate(rows))})
    old_path = tmp_path / "old.ckpt"
    format_1 = {CONFIG_KEY: raw[CONFIG_KEY], FORMAT_KEY: "ipt-mindspore/1"}
    ms.save_checkpoint(old, str(old_path), append_dict=format_1)
    loaded, again = load_model(old_path)
    assert set(again.params) == set(weights.params)
    x = data["input"]
    np.testing.assert_array_equal(run_task(loaded, "sr_x4", x), run_task(ipt, "sr_x4", x))

    old[-1]["data"] = old[-1]["data"][:-1]
    ms.save_checkpoint(old, str(old_path), append_dict=format_1)
    with pytest.raises(CheckpointError, match=r"old\.ckpt: parameter body\.decoder\.1\.cross_attn\.in_proj_weight has "
                                              r"shape \(107, 36\), expected \(3 \* dim, dim\)"):
        read_weights(old_path)


def test_checkpoint_format_version(tmp_path):
    """Our checkpoints carry their format version: 2 is written; 1 (packed or block layout) and 2 are read, and a
    format this version does not know is one clear error naming the file, the key and the value."""
    ipt, weights = load_model(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3)
    path = tmp_path / "ours.ckpt"
    save_checkpoint(ipt, path, extra={"step": 7})
    raw = ms.load_checkpoint(str(path))
    assert raw[FORMAT_KEY] == FORMAT_VERSION == "ipt-mindspore/2"
    assert FORMAT_KEY not in read_weights(path).extra

    params = [{"name": k, "data": v} for k, v in raw.items() if not isinstance(v, str)]
    for version, readable in (("ipt-mindspore/1", True), ("ipt-mindspore/3", False)):
        other = tmp_path / f"format_{version[-1]}.ckpt"
        ms.save_checkpoint(params, str(other), append_dict={CONFIG_KEY: raw[CONFIG_KEY], FORMAT_KEY: version})
        if readable:
            again = read_weights(other)
            assert again.config == weights.config and again.extra == {"step": 7}
            for k, v in weights.params.items():
                np.testing.assert_array_equal(again.params[k], v)
        else:
            with pytest.raises(CheckpointError, match=r"format_3\.ckpt: ipt_format 'ipt-mindspore/3' is a format "
                                                      r"this version cannot read"):
                read_weights(other)


def test_keep_one_task_of_the_pretrained_model(tmp_path):
    _, data = fixture("ipt_tiny_pretrain_zip")
    full, weights = load_model(FIXTURES / "ipt_tiny_pretrain_zip.pt", num_heads=3)
    sliced = select_tasks(weights, ["sr_x2"])
    assert sliced.config.tasks == ("sr_x2",)
    assert not any(k.startswith("tasks.") and not k.startswith("tasks.sr_x2.") for k in sliced.params)
    path = tmp_path / "sr_x2.ckpt"
    save_checkpoint(build_model(sliced), path)
    single, _ = load_model(path)
    x = data["input"]
    np.testing.assert_array_equal(run_task(single, "sr_x2", x), run_task(full, "sr_x2", x))
    with pytest.raises(ConfigError, match=r"task\(s\) \['denoise_70'\] not in the checkpoint"):
        select_tasks(weights, ["denoise_70"])


def test_strict_assignment_names_the_parameter(tmp_path):
    ipt, weights = load_model(FIXTURES / "ipt_tiny_sr_x4_legacy.pt", num_heads=3)
    params = dict(weights.params)
    missing = params.pop("body.decoder.1.norm3.beta")
    with pytest.raises(CheckpointError, match=r"missing \['body\.decoder\.1\.norm3\.beta'\]"):
        assign_strict(ipt, params, "x.ckpt")
    params["body.decoder.1.norm3.beta"] = missing[:-1]
    with pytest.raises(CheckpointError, match=r"body\.decoder\.1\.norm3\.beta has shape \(35,\), the model expects"):
        assign_strict(ipt, params, "x.ckpt")
    params["body.decoder.1.norm3.beta"] = missing
    params["tasks.sr_x4.spare"] = missing
    with pytest.raises(CheckpointError, match=r"unexpected \['tasks\.sr_x4\.spare'\]"):
        assign_strict(ipt, params, "x.ckpt")


def test_foreign_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_weights(tmp_path / "nope.ckpt")
    png = tmp_path / "photo.ckpt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(CheckpointError, match="photo.ckpt: not a readable checkpoint"):
        read_weights(png)
    other = tmp_path / "resnet.ckpt"
    ms.save_checkpoint([{"name": "conv1.weight", "data": ms.Tensor(np.ones((2, 2), np.float32))}], str(other))
    with pytest.raises(CheckpointError, match=r"resnet.ckpt: not an IPT checkpoint"):
        read_weights(other)
