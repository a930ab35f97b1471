"""The IPT network: sizes, parameter names, shapes, graph-mode runs, mixed precision."""
import numpy as np
import mindspore as ms
import pytest

from src.errors import ConfigError
from src.models.ipt import IPT, IPTConfig, count_trainable
from src.tasks import OFFICIAL_PRETRAIN_ORDER, TASKS


def test_official_parameter_counts():
    # reference §1.4: the official 6-task pre-training model and the single-task sr_x2 model
    assert count_trainable(IPT(IPTConfig(tasks=OFFICIAL_PRETRAIN_ORDER))) == 118_892_370
    assert count_trainable(IPT(IPTConfig(tasks=("sr_x2",)))) == 115_460_419


def test_single_task_counts_per_scale():
    # tails differ by task: x3 115,645,059, x4 115,608,131, x1 115,312,707 (reference §1.4)
    expected = {"sr_x3": 115_645_059, "sr_x4": 115_608_131, "derain": 115_312_707}
    for task, count in expected.items():
        assert count_trainable(IPT(IPTConfig(tasks=(task,)))) == count


def test_parameter_names_are_by_task(tiny_config):
    net = IPT(tiny_config(("sr_x4", "denoise_30")))
    names = {p.name for p in net.get_parameters()}
    assert "tasks.sr_x4.query" in names
    assert "tasks.sr_x4.tail.upsampler.1.weight" in names  # two x2 stages
    assert "tasks.denoise_30.head.res_blocks.1.conv2.bias" in names
    assert not any(n.startswith("tasks.denoise_30.tail.upsampler") for n in names)  # x1: no upsampler
    assert not any("out_proj.bias" in n for n in names)
    assert all(n.startswith(("body.", "tasks.")) for n in names)


def test_attention_in_projections_are_the_row_blocks_each_layer_uses(tiny_config):
    cfg = tiny_config(("sr_x2",))
    d = cfg.token_dim
    shapes = {p.name: tuple(p.shape) for p in IPT(cfg).get_parameters() if ".in_proj_weight" in p.name}
    expected = {"body.encoder.0.self_attn.in_proj_weight": (3 * d, d),       # q = k = v: the packed W_q | W_k | W_v
                "body.decoder.0.self_attn.in_proj_weight_qk": (2 * d, d),   # q = k: W_q | W_k, and W_v
                "body.decoder.0.self_attn.in_proj_weight_v": (d, d),
                "body.decoder.0.cross_attn.in_proj_weight_q": (d, d),       # k = v: W_q, and W_k | W_v
                "body.decoder.0.cross_attn.in_proj_weight_kv": (2 * d, d)}
    assert {k: v for k, v in shapes.items() if ".0." in k} == expected
    assert len(shapes) == cfg.num_encoder_layers + 4 * cfg.num_decoder_layers


def test_task_net_shares_parameters_without_renaming(tiny_config):
    ipt = IPT(tiny_config(("sr_x2", "derain")))
    net = ipt.task_net("derain")
    own = {p.name: p for p in ipt.get_parameters()}
    for p in net.get_parameters():
        assert own[p.name] is p
    assert not any(p.name.startswith("tasks.sr_x2") for p in net.get_parameters())


@pytest.mark.parametrize("task", sorted(TASKS))
def test_forward_shapes_in_graph_mode(tiny_config, task):
    ipt = IPT(tiny_config((task,)))
    x = ms.Tensor(np.random.default_rng(0).uniform(0, 255, (2, 3, 48, 48)).astype(np.float32))
    y = ipt.task_net(task)(x)
    s = TASKS[task].scale
    assert y.shape == (2, 3, 48 * s, 48 * s)
    assert np.isfinite(y.asnumpy()).all()


def test_return_tokens(tiny_config):
    cfg = tiny_config()
    out, tokens = IPT(cfg).task_net("sr_x2", return_tokens=True)(ms.Tensor(np.zeros((1, 3, 48, 48), np.float32)))
    assert out.shape == (1, 3, 96, 96) and tokens.shape == (1, cfg.num_tokens, cfg.token_dim)


def test_mixed_precision_close_to_fp32(tiny_config):
    """float16 through mindspore.amp (native form): MatMul, BatchMatMul and Conv2D in half precision."""
    cfg = tiny_config()
    fp32, fp16 = IPT(cfg), IPT(cfg, ms.float16)
    ms.load_param_into_net(fp16, {p.name: p for p in fp32.get_parameters()}, strict_load=True)
    assert all(p.dtype == ms.float32 for p in fp16.get_parameters())  # parameters stay float32
    names = [p.name for p in fp16.get_parameters()]
    assert sorted(p.name for p in fp16.task_net("sr_x2").get_parameters()) == sorted(names)
    assert [p.name for p in fp16.get_parameters()] == names  # mixed precision renames nothing
    x = ms.Tensor(np.random.default_rng(1).uniform(0, 255, (1, 3, 48, 48)).astype(np.float32))
    a = fp32.task_net("sr_x2")(x).asnumpy()
    b = fp16.task_net("sr_x2")(x).asnumpy()
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    assert np.abs(a - b).max() > 0  # the fp16 path really ran in half precision


def test_bad_configs():
    with pytest.raises(ConfigError, match="unknown task 'sr_x5'; valid tasks: sr_x2"):
        IPTConfig(tasks=("sr_x5",))
    with pytest.raises(ConfigError, match="not divisible by model.num_heads 5"):
        IPTConfig(n_feats=4, num_heads=5)
    with pytest.raises(ConfigError, match=r"unknown model key\(s\) \['num_layer'\]"):
        IPTConfig.from_dict({"num_layer": 2})
    with pytest.raises(ConfigError, match="not in this model; it has: sr_x2"):
        IPT(IPTConfig(tasks=("sr_x2",), n_feats=4, num_heads=3, num_encoder_layers=0,
                      num_decoder_layers=0)).task_net("derain")


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_head_rows_split_and_merge_heads(parts):
    """The gather index equals the reshape/transpose head split of PyTorch's MHA, and argsort merges heads back."""
    from src.models.cpu_kernels import head_rows
    n, tokens, heads, hd = 2, 5, 3, 4
    proj = np.random.default_rng(0).standard_normal((n, tokens, parts * heads * hd)).astype(np.float32)
    rows = proj.reshape(n, -1, hd)
    for part in range(parts):
        expected = proj[..., part * heads * hd:(part + 1) * heads * hd].reshape(n, tokens, heads, hd)
        expected = expected.transpose(0, 2, 1, 3).reshape(n, heads * tokens, hd)
        np.testing.assert_array_equal(rows[:, head_rows(tokens, heads, part, parts)], expected)
    if parts == 1:
        index = head_rows(tokens, heads, 0, 1)
        merged = rows[:, index][:, np.argsort(index)]
        np.testing.assert_array_equal(merged.reshape(n, tokens, -1), proj)
