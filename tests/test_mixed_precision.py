"""float16 compute on CPU, where MindSpore 2.10 has float16 MatMul, BatchMatMul and Conv2D kernels: mixed precision
through ``mindspore.amp`` (the native form), dynamic loss scaling, resume, and the official-size graph's range."""
import logging

import numpy as np
import mindspore as ms
import pytest
from skimage import data as skdata

from src.checkpoint.loader import read_weights
from src.config import Config
from src.models.ipt import IPT, IPTConfig
from src.training import LOSS_SCALE_INIT, Trainer
from test_training import read_losses, train_args, two_crops  # noqa: F401 (two_crops: a fixture)
from train import main as train_main


def fp16_args(out, images, steps, *extra):
    return train_args(out, images, steps, "--compute_dtype", "float16", *extra)


@pytest.fixture(scope="module")
def fp16_run(two_crops, tmp_path_factory):  # noqa: F811 (the imported fixture)
    """20 float16 steps (graph_form auto: native, since the cpu form is float32 only), checkpoints at 10 and 20."""
    out = tmp_path_factory.mktemp("fp16")
    assert train_main(fp16_args(out, two_crops, 20, "--save_every", "10")) == 0
    return out


def test_float16_training_loss_falls(fp16_run):
    curve = read_losses(fp16_run / "loss.csv")
    assert sorted(curve) == list(range(1, 21))
    first, last = np.mean([curve[s] for s in range(1, 6)]), np.mean([curve[s] for s in range(16, 21)])
    assert last < 0.8 * first, (first, last)


def test_float16_resume_is_exact(fp16_run, two_crops, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="ipt")
    assert train_main(fp16_args(tmp_path, two_crops, 20, "--resume", str(fp16_run / "ipt_sr_x2_step10.ckpt"))) == 0
    assert "graph_form auto: native for float16" in caplog.text
    resumed, straight = read_weights(tmp_path / "ipt_sr_x2_last.ckpt"), read_weights(fp16_run / "ipt_sr_x2_last.ckpt")
    for name, value in straight.params.items():
        assert np.array_equal(resumed.params[name], value), name
    before = read_losses(fp16_run / "loss.csv")
    assert read_losses(tmp_path / "loss.csv") == {s: before[s] for s in range(11, 21)}


def test_float16_overflow_step_is_skipped_and_lowers_the_scale(tiny_config):
    optim = Config(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, clip_grad_norm=0.0, milestones=[],
                   gamma=0.5)
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 255, (2, 3, 48, 48)).astype(np.float32)
    hr = ms.Tensor(rng.uniform(0, 255, (2, 3, 96, 96)).astype(np.float32))
    ipt = IPT(tiny_config(), ms.float16, "native")
    trainer = Trainer(ipt, "sr_x2", optim, loss_scaling=True)
    step = trainer.train_step("sr_x2")
    state = trainer.state()
    for _ in range(4):  # until a step's scaled gradients fit in float16 (the first scale, 2^16, may not)
        assert np.isfinite(step(ms.Tensor(lr), hr).asnumpy()).all()
        if int(state["good_steps"].asnumpy()):
            break
    scale = float(state["loss_scale"].asnumpy())
    assert int(state["good_steps"].asnumpy()) == 1 and scale <= LOSS_SCALE_INIT
    before = {p.name: p.asnumpy().copy() for p in ipt.get_parameters()}
    lr[1, 2, 3, 4] = 1e6  # finite in float32, infinite once the first convolution runs in float16
    step(ms.Tensor(lr), hr)
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in ipt.get_parameters())
    assert float(state["loss_scale"].asnumpy()) == scale / 2 and int(state["good_steps"].asnumpy()) == 0


def test_official_size_float16_graph_stays_finite_where_activations_exceed_256():
    """The official-size native graph in float16 on a photo tile whose body activations exceed 256 (the tokens are
    scaled up through the linear encoding): LayerNorm and softmax statistics stay float32, so nothing overflows.
    The difference from float32 is printed for benchmarks/README.md."""
    cfg = IPTConfig(tasks=("sr_x2",))
    ms.set_seed(1)
    fp32 = IPT(cfg)
    for p in fp32.body.linear_encoding.get_parameters():
        p.set_data(ms.Tensor(p.asnumpy() * 10.0))
    fp16 = IPT(cfg, ms.float16, "native")
    ms.load_param_into_net(fp16, {p.name: p for p in fp32.get_parameters()}, strict_load=True)
    tile = ms.Tensor(skdata.coffee()[100:148, 200:248].transpose(2, 0, 1)[None].astype(np.float32))
    exact, tokens = fp32.task_net("sr_x2", return_tokens=True)(tile)
    half, half_tokens = fp16.task_net("sr_x2", return_tokens=True)(tile)
    exact, half = exact.asnumpy(), half.asnumpy()
    assert np.abs(tokens.asnumpy()).max() > 256 and np.isfinite(half_tokens.asnumpy()).all()
    assert np.isfinite(half).all()
    diff = np.abs(half - exact)
    print(f"\nofficial-size sr_x2, float16 against float32 (tokens up to {np.abs(tokens.asnumpy()).max():.0f}): "
          f"mean {diff.mean():.3f}, max {diff.max():.2f} grey levels")
    assert diff.mean() < 0.05 * np.abs(exact).mean()


@pytest.mark.parametrize("device, features, mode, expected", [
    ("CPU", {"amp_loss_scale_train_classic_target"}, None, False),
    ("Ascend", {"amp_loss_scale_train_classic_target"}, None, True),  # 910A
    ("Ascend", {"train_hq_dtype_line"}, None, False),  # 910B, INFNAN mode: no status to clear
    ("Ascend", {"train_hq_dtype_line"}, "SATURATION_MODE", True),
])
def test_which_devices_clear_the_overflow_status(monkeypatch, device, features, mode, expected):
    """The decision only: the device and its SoC features are stand-ins (no Ascend here); the step that uses it runs
    for real on CPU above."""
    import src.training as training

    class Soc:
        @staticmethod
        def ascend_soc_supports_feature(name):
            return name in features

    monkeypatch.setattr(training.ms, "get_context", lambda key: device)
    monkeypatch.setattr(training.MSContext, "get_instance", staticmethod(lambda: Soc()))
    if mode:
        monkeypatch.setenv("MS_ASCEND_CHECK_OVERFLOW_MODE", mode)
    else:
        monkeypatch.delenv("MS_ASCEND_CHECK_OVERFLOW_MODE", raising=False)
    assert training.device_keeps_overflow_status() is expected
