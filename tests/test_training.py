"""Training: on-the-fly degradations, the data stream, the graph-mode step and train.py end to end.

Real photos from scikit-image written as PNGs, a tiny model (conftest.TINY), real MindSpore graphs, real processes
for the command-line errors.
"""
import csv
import logging
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import mindspore as ms
import pytest
from skimage import data as skdata

from conftest import TINY
from src.checkpoint.loader import load_model, read_weights, save_checkpoint
from src.config import Config
from src.data.degradations import (add_noise, augment, bicubic_downscale, degrade, imresize, random_crop,
                                   resize_weights)
from src.data.train_dataset import TrainPairs
from src.errors import ConfigError, ImageError
from src.models.ipt import IPT, IPTConfig
from src.training import LOSS_SCALE_INIT, Trainer, learning_rate
from train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY_FLAGS = [x for k, v in TINY.items() for x in (f"--model.{k}", str(v))]


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three real photographs, full size."""
    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee"):
        write_rgb(d / f"{name}.png", getattr(skdata, name)())
    return d


@pytest.fixture(scope="module")
def two_crops(tmp_path_factory):
    """Two 96x96 photo crops: for sr_x2 every sample is one of them, flipped or rotated (overfitting them)."""
    d = tmp_path_factory.mktemp("crops")
    write_rgb(d / "astronaut.png", skdata.astronaut()[80:176, 180:276])
    write_rgb(d / "chelsea.png", skdata.chelsea()[100:196, 150:246])
    return d


# --- degradations ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", [2, 3, 4])
def test_imresize_keeps_constants_and_linear_ramps(s):
    n = 48 * s
    assert np.abs(imresize(np.full((n, n + s, 3), 77.0), 48, 49) - 77.0).max() < 1e-9
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    ramp = np.stack([2 * x + 3 * y, x, 100 - y], axis=-1)
    oy, ox = (np.mgrid[0:48, 0:48] + 0.5) * s - 0.5  # input coordinates of the output pixel centres
    expected = np.stack([2 * ox + 3 * oy, ox, 100 - oy], axis=-1)
    out = imresize(ramp, 48, 48)
    assert np.abs(out - expected)[3:-3, 3:-3].max() < 1e-9  # the mirrored borders bend it, the inside is exact


def test_imresize_x2_kernel_is_matlabs():
    """Halving: output pixel 10 (centred on input 20.5) takes MATLAB's antialiased bicubic taps
    [-3, -9, 29, 111, 111, 29, -9, -3] / 256 from inputs 17..24."""
    w = resize_weights(96, 48)
    np.testing.assert_allclose(w[10, 17:25] * 256, [-3, -9, 29, 111, 111, 29, -9, -3], atol=1e-12)
    assert np.count_nonzero(w[10]) == 8
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_downscale_close_to_area_average(s):
    hr = skdata.astronaut()[:96 * s, 100:100 + 96 * s]
    lr = bicubic_downscale(hr, s)
    assert lr.shape == (96, 96, 3) and lr.dtype == np.float32
    np.testing.assert_array_equal(lr, np.round(lr))
    area = cv2.resize(hr, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32)
    nearest = hr[s // 2::s, s // 2::s].astype(np.float32)
    assert np.abs(lr - area).mean() < 2.0 and abs((lr - area).mean()) < 0.3
    assert np.abs(lr - area).mean() < 0.6 * np.abs(nearest - area).mean()


def test_noise_and_rain():
    rng = np.random.default_rng(0)
    flat = np.full((200, 200, 3), 128, np.uint8)
    noisy = add_noise(flat, 30, rng)
    assert noisy.dtype == np.float32 and not np.array_equal(noisy, np.round(noisy))
    assert abs((noisy - 128).std() - 30) < 1 and abs((noisy - 128).mean()) < 0.5
    assert add_noise(np.full((64, 64, 3), 250, np.uint8), 50, rng).max() == 255
    streak = np.zeros((48, 48), np.uint8)
    streak[:, 10] = 200
    lr, hr = degrade("derain", flat[:48, :48], rng, streak)
    assert lr.shape == hr.shape == (48, 48, 3) and lr[0, 10].tolist() == [255] * 3 and lr[0, 11].tolist() == [128] * 3


def test_crops_and_augmentation():
    rng = np.random.default_rng(1)
    small = skdata.chelsea()[:60, :80]
    crop = random_crop(small, 96, rng)  # smaller than the crop: resized up first
    assert crop.shape == (96, 96, 3)
    a = np.arange(2 * 3 * 3).reshape(2, 3, 3).transpose(1, 2, 0)
    seen = set()
    for seed in range(40):
        x, y = augment((a, a.copy()), np.random.default_rng(seed))
        np.testing.assert_array_equal(x, y)
        seen.add(x.tobytes())
    assert len(seen) == 8  # all eight flips/rotations of the square


@pytest.mark.parametrize("task, scale", [("sr_x2", 2), ("sr_x3", 3), ("sr_x4", 4), ("denoise_30", 1),
                                         ("denoise_50", 1), ("derain", 1)])
def test_train_pairs_shapes(photos, two_crops, task, scale):
    rain = sorted(two_crops.iterdir()) if task == "derain" else ()
    pairs = TrainPairs(sorted(photos.iterdir()), task, length=4, rain_images=rain)
    assert len(pairs) == 4
    lr, hr, skipped, digest = pairs[3]
    assert digest.shape == (8,) and digest.dtype == np.uint8
    assert (skipped == -1).all()
    assert lr.shape == (3, 48, 48) and hr.shape == (3, 48 * scale, 48 * scale)
    assert lr.dtype == np.float32 and hr.dtype == np.uint8 and lr.flags.c_contiguous
    assert 0 <= lr.min() and lr.max() <= 255 and 0 <= hr.min() and hr.max() <= 255
    assert np.array_equal(lr, np.round(lr)) == (task != "denoise_30" and task != "denoise_50")
    with pytest.raises(IndexError):
        pairs[4]


def test_train_pairs_are_a_function_of_seed_and_index(photos):
    images = sorted(photos.iterdir())
    a = TrainPairs(images, "denoise_30", length=10, seed=3)
    b = TrainPairs(images, "denoise_30", length=10, seed=3)
    for i in (0, 7, 2):
        for x, y in zip(a[i], b[i]):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0][1], a[1][1])
    assert not np.array_equal(a[0][1], TrainPairs(images, "denoise_30", length=1, seed=4)[0][1])
    resumed = TrainPairs(images, "denoise_30", length=5, seed=3, start=5)
    np.testing.assert_array_equal(resumed[2][0], a[7][0])
    shard = TrainPairs(images, "denoise_30", length=5, seed=3, num_shards=2, shard_id=1)
    np.testing.assert_array_equal(shard[1][0], a[3][0])
    passes = [[a.image_for(g) for g in range(k, k + 3)] for k in (0, 3)]  # each pass uses every image once
    assert sorted(passes[0]) == sorted(passes[1]) == [str(p) for p in images] and passes[0] != passes[1]


def test_num_workers_auto_splits_the_cores():
    from src.data.train_dataset import data_workers

    assert data_workers("auto", 1, cores=2)[0] == 2 and data_workers("auto", 8, cores=192)[0] == 24
    assert data_workers("auto", 4, cores=2)[0] == 1  # at least one each
    assert data_workers(3, 1, cores=4) == (3, "data.num_workers 3")


def test_too_small_images_are_refused(tmp_path):
    tiny = write_rgb(tmp_path / "tiny.png", skdata.coffee()[:40, :300])
    with pytest.raises(ImageError, match="tiny.png: 40x300 pixels is too small for training"):
        TrainPairs([tiny], "sr_x2", length=1)[0]


# --- the training step and train.py --------------------------------------------------------------------------------

def train_args(out, images, steps, *extra):
    return ["--task", "sr_x2", "--data.train_dir", str(images), "--output_dir", str(out), "--steps", str(steps),
            "--data.batch_size", "2", "--data.num_workers", "1", "--optim.lr", "1e-3", "--log_every", "6",
            *TINY_FLAGS, *extra]


def read_losses(path):
    with open(path, newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def trained(two_crops, tmp_path_factory):
    """24 steps from a random init, checkpoints at 12 and 24."""
    out = tmp_path_factory.mktemp("run")
    assert train_main(train_args(out, two_crops, 24, "--save_every", "12")) == 0
    return out


def test_loss_decreases_when_overfitting(trained):
    losses = read_losses(trained / "loss.csv")
    assert sorted(losses) == list(range(1, 25))
    first, last = np.mean([losses[s] for s in range(1, 7)]), np.mean([losses[s] for s in range(19, 25)])
    assert last < 0.6 * first, (first, last)
    curve = cv2.imread(str(trained / "loss.png"))
    assert curve is not None and curve.shape == (400, 720, 3)


def test_checkpoints_are_ours_and_atomic(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["ipt_sr_x2_last.ckpt", "ipt_sr_x2_last.opt.ckpt", "ipt_sr_x2_step12.ckpt",
                     "ipt_sr_x2_step12.opt.ckpt", "ipt_sr_x2_step24.ckpt", "ipt_sr_x2_step24.opt.ckpt", "loss.csv",
                     "loss.png"]  # no temporary files left behind
    ipt, weights = load_model(trained / "ipt_sr_x2_last.ckpt")
    assert weights.source_format == "ours" and weights.config == IPTConfig(tasks=("sr_x2",), **TINY)
    assert weights.extra == {"step": 24, "seed": 0, "batch_size": 2}
    y = ipt.task_net("sr_x2")(ms.Tensor(np.full((1, 3, 48, 48), 100, np.float32))).asnumpy()
    assert y.shape == (1, 3, 96, 96) and np.isfinite(y).all()
    step24 = read_weights(trained / "ipt_sr_x2_step24.ckpt").params
    assert all(np.array_equal(step24[k], v) for k, v in weights.params.items())


def test_resume_continues_exactly(trained, two_crops, tmp_path, caplog):
    args = train_args(tmp_path, two_crops, 24, "--resume", str(trained / "ipt_sr_x2_step12.ckpt"))
    caplog.set_level(logging.INFO, logger="ipt")
    assert train_main(args) == 0
    assert "step 24/24 task sr_x2 L1" in caplog.text
    resumed, straight = read_weights(tmp_path / "ipt_sr_x2_last.ckpt"), read_weights(trained / "ipt_sr_x2_last.ckpt")
    assert resumed.extra["step"] == 24
    for name, value in straight.params.items():
        assert np.array_equal(resumed.params[name], value), name
    before = read_losses(trained / "loss.csv")
    assert read_losses(tmp_path / "loss.csv") == {s: before[s] for s in range(13, 25)}


def test_resume_auto_continues_from_last(trained, two_crops, tmp_path, caplog):
    """A finished run that kept only ``_last`` (step 12) goes on to step 24 with ``--resume auto --steps 24`` and
    ends exactly where the uninterrupted 24-step run does."""
    assert train_main(train_args(tmp_path, two_crops, 12, "--save_every", "0")) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["ipt_sr_x2_last.ckpt", "ipt_sr_x2_last.opt.ckpt"]
    caplog.set_level(logging.INFO, logger="ipt")
    assert train_main(train_args(tmp_path, two_crops, 24, "--resume", "auto")) == 0
    assert f"resume auto: {tmp_path / 'ipt_sr_x2_last.ckpt'} (step 12)" in caplog.text
    resumed, straight = read_weights(tmp_path / "ipt_sr_x2_last.ckpt"), read_weights(trained / "ipt_sr_x2_last.ckpt")
    assert resumed.extra["step"] == 24
    for name, value in straight.params.items():
        assert np.array_equal(resumed.params[name], value), name
    assert read_losses(tmp_path / "loss.csv") == read_losses(trained / "loss.csv")


def test_latest_checkpoint_is_the_newest_consistent_pair(trained, tmp_path):
    """``_last`` counts by the step stored in it; a pair whose optimizer state is of another step (a save cut
    short) is passed over."""
    import shutil
    from src.train_outputs import latest_checkpoint

    assert latest_checkpoint(tmp_path) is None
    for name in ("ipt_sr_x2_step12.ckpt", "ipt_sr_x2_step12.opt.ckpt"):
        shutil.copy(trained / name, tmp_path / name)
    shutil.copy(trained / "ipt_sr_x2_step24.ckpt", tmp_path / "ipt_sr_x2_last.ckpt")
    shutil.copy(trained / "ipt_sr_x2_step12.opt.ckpt", tmp_path / "ipt_sr_x2_last.opt.ckpt")  # step 12: mismatch
    assert latest_checkpoint(tmp_path) == (tmp_path / "ipt_sr_x2_step12.ckpt", 12)
    shutil.copy(trained / "ipt_sr_x2_step24.opt.ckpt", tmp_path / "ipt_sr_x2_last.opt.ckpt")
    assert latest_checkpoint(tmp_path) == (tmp_path / "ipt_sr_x2_last.ckpt", 24)


def test_a_run_never_overwrites_another_runs_files(trained, two_crops, tmp_path):
    """A new run, or one resuming an older checkpoint, in a folder with another run's checkpoints refuses to
    start and changes nothing; ``--overwrite true`` replaces that run's files."""
    import shutil
    out = tmp_path / "out"
    shutil.copytree(trained, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    older = [["--resume", str(folder / "ipt_sr_x2_step12.ckpt")] for folder in (out, trained)]
    for extra in [[], *older]:
        with pytest.raises(ConfigError, match=re.escape(
                f"output_dir {out} holds another run's files (its newest checkpoint is ipt_sr_x2_step24.ckpt (step "
                f"24)); this run would overwrite them: continue it with --resume auto, choose another --output_dir, "
                f"or pass --overwrite true")):
            train_main(train_args(out, two_crops, 30, *extra))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert train_main(train_args(out, two_crops, 2, "--overwrite", "true")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ipt_sr_x2_last.ckpt", "ipt_sr_x2_last.opt.ckpt", "loss.csv",
                                                      "loss.png"]
    assert read_weights(out / "ipt_sr_x2_last.ckpt").extra["step"] == 2
    assert sorted(read_losses(out / "loss.csv")) == [1, 2]


def test_divergence_is_reported_at_the_next_log_step(two_crops, tmp_path):
    """Losses are read at log steps only: a loss that turns non-finite is an error naming its step, raised when
    the losses are read, before any checkpoint of the diverged model is written."""
    from src.errors import IPTError

    with pytest.raises(IPTError, match=r"the loss is (nan|inf) at step (\d+) \(sr_x2; read at step (4|8)\): training "
                                       r"diverged") as raised:
        train_main(train_args(tmp_path, two_crops, 8, "--optim.lr", "1e30", "--log_every", "4", "--save_every", "4"))
    step, read = map(int, re.search(r"at step (\d+) .*read at step (\d+)", str(raised.value)).groups())
    assert read - 4 < step <= read
    assert not list(tmp_path.glob(f"ipt_sr_x2_step{read}.ckpt")) and not (tmp_path / "ipt_sr_x2_last.ckpt").exists()


def test_fine_tune_one_task_of_the_official_pretrained_file(two_crops, tmp_path):
    """The 6-task PyTorch fixture: denoise_30 is trained and kept alone; the other tasks are dropped."""
    pretrained = ROOT / "tests" / "fixtures" / "ipt_tiny_pretrain_zip.pt"
    args = ["--ckpt_path", str(pretrained), "--num_heads", "3", "--task", "denoise_30", "--data.train_dir",
            str(two_crops), "--output_dir", str(tmp_path), "--steps", "2", "--data.batch_size", "2",
            "--data.num_workers", "1"]
    assert train_main(args) == 0
    before = read_weights(pretrained, num_heads=3).params
    after = read_weights(tmp_path / "ipt_denoise_30_last.ckpt")
    assert after.config.tasks == ("denoise_30",) and after.config.num_heads == 3
    assert set(after.params) == {k for k in before if not k.startswith("tasks.") or ".denoise_30." in k}
    assert all(not np.array_equal(after.params[k], before[k]) for k in after.params)


def test_learning_rate_milestones():
    optim = Config(lr=4e-5, gamma=0.5, milestones=[2, 4])
    assert [learning_rate(optim, s) for s in range(6)] == [4e-5, 4e-5, 2e-5, 2e-5, 1e-5, 1e-5]


def twin_models(ipt, count):
    """``count`` IPTs of ``ipt``'s configuration, each with a copy of its parameter values."""
    twins = [IPT(ipt.config) for _ in range(count)]
    for p in ipt.get_parameters():
        for twin in twins:
            twin.parameters_dict()[p.name].set_data(ms.Tensor(p.asnumpy().copy()))
    return twins


def test_learning_rate_schedule_runs_in_the_graph(tiny_config):
    """The milestone schedule is evaluated in the step graph (no rate is set from the host): four steps crossing
    milestones 1 and 3 end with the parameters of the same four steps with Adam's rate set from the host, as
    ``learning_rate`` gives it, before each step."""
    from mindspore import nn
    from src.losses import L1Loss, RestorationLoss
    from src.training import TrainStep

    optim = Config(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, clip_grad_norm=0.0, milestones=[3, 1],
                   gamma=0.1)
    lr, hr = (ms.Tensor(np.random.default_rng(1).uniform(0, 255, (2, 3, s, s)).astype(np.float32)) for s in (48, 96))
    nets = twin_models(IPT(tiny_config()), 2)
    trainer = Trainer(nets[0], "sr_x2", optim)
    for _ in range(4):
        trainer.train_step("sr_x2")(lr, hr)
    assert int(trainer.schedule.completed.asnumpy()) == 4
    adam = nn.Adam(nets[1].task_net("sr_x2").trainable_params(), learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    step = TrainStep(RestorationLoss(nets[1].task_net("sr_x2"), L1Loss()), adam)
    step.set_train()
    for s in range(4):
        adam.learning_rate.set_data(ms.Tensor(learning_rate(optim, s), ms.float32))
        step(lr, hr)
    for p in nets[1].get_parameters():
        np.testing.assert_array_equal(nets[0].parameters_dict()[p.name].asnumpy(), p.asnumpy(), err_msg=p.name)


def test_loss_scaling_step_matches_and_skips_overflow(tiny_config):
    """The float16 path's dynamic loss scaling, run in float32: the same update, and a non-finite step is skipped."""
    optim = Config(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, clip_grad_norm=1.0, milestones=[],
                   gamma=0.5)
    rng = np.random.default_rng(0)
    lr = ms.Tensor(rng.uniform(0, 255, (2, 3, 48, 48)).astype(np.float32))
    hr = ms.Tensor(rng.uniform(0, 255, (2, 3, 96, 96)).astype(np.float32))
    start = {p.name: p.asnumpy().copy() for p in IPT(tiny_config()).get_parameters()}
    after = []
    for scaling in (False, True):
        ipt = IPT(tiny_config())
        for p in ipt.get_parameters():
            p.set_data(ms.Tensor(start[p.name]))
        trainer = Trainer(ipt, "sr_x2", optim, loss_scaling=scaling)
        assert np.isfinite(trainer.train_step("sr_x2")(lr, hr).asnumpy()).all()
        after.append({p.name: p.asnumpy().copy() for p in ipt.get_parameters()})
    for name in start:
        np.testing.assert_allclose(after[1][name], after[0][name], atol=1e-6, err_msg=name)
        assert not np.array_equal(after[1][name], start[name]), name
    state = trainer.state()
    assert float(state["loss_scale"].asnumpy()) == LOSS_SCALE_INIT and int(state["good_steps"].asnumpy()) == 1
    bad = lr.asnumpy()
    bad[0, 0, 0, 0] = np.inf
    assert not np.isfinite(trainer.train_step("sr_x2")(ms.Tensor(bad), hr).asnumpy()[0])
    for p in ipt.get_parameters():
        assert np.array_equal(p.asnumpy(), after[1][p.name]), p.name
    assert float(state["loss_scale"].asnumpy()) == LOSS_SCALE_INIT / 2 and int(state["good_steps"].asnumpy()) == 0


# --- dataset sink mode: what runs without a device ----------------------------------------------------------------

def test_sink_size_checks():
    """The decisions of dataset sink mode, with the device named as an input: "GPU" here stands in for a device
    that this machine lacks, only to reach the checks after the CPU refusal; nothing runs on a device."""
    from src.config import parse_config
    from train import DEFAULT_CONFIG, check_sink_size, check_sink_start

    def config(*flags):
        return parse_config(["--steps", "16", "--log_every", "8", "--save_every", "4", *flags], DEFAULT_CONFIG)

    check_sink_size(config("--sink_size", "4"), "GPU")
    check_sink_size(config("--sink_size", "4"), "Ascend")
    check_sink_size(config("--sink_size", "0"), "CPU")
    check_sink_size(config("--sink_size", "4", "--val_every", "6"), "GPU")  # no val_dir: no validation
    check_sink_size(config("--sink_size", "4", "--mode", "pretrain", "--tasks", "[denoise_30]"), "GPU")
    for flags, message in [(["--save_every", "6"], "does not divide save_every 6"),
                           (["--steps", "18"], "does not divide steps 18"),
                           (["--val_every", "6", "--data.val_dir", "val"], "does not divide val_every 6"),
                           (["--mode", "pretrain"], "trains one task (fine-tuning)")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_sink_size(config("--sink_size", "4", *flags), "GPU")
    with pytest.raises(ConfigError, match="runs on Ascend and GPU only"):
        check_sink_size(config("--sink_size", "4"), "CPU")
    check_sink_start(4, 0, "x.ckpt")
    check_sink_start(4, 12, "x.ckpt")
    check_sink_start(0, 7, "x.ckpt")
    with pytest.raises(ConfigError, match=re.escape("sink_size 4 does not divide step 6 of x.ckpt, where this run "
                                                    "resumes")):
        check_sink_start(4, 6, "x.ckpt")


def test_sink_dataset_is_the_host_stream_from_a_resumed_step(two_crops):
    """The dataset a sink sends to the device holds the (lr, hr) batches the per-step path trains on, in the same
    order, with worker processes, and a resumed stream (start at step 3) is the uninterrupted one from step 3."""
    from src.data.train_dataset import batches, sink_dataset

    images, batch = sorted(two_crops.iterdir()), 2
    whole = [b[:2] for b in batches(TrainPairs(images, "denoise_30", 8 * batch, seed=5, batch_size=batch), batch)]
    resumed = TrainPairs(images, "denoise_30", 5 * batch, seed=5, start=3 * batch, batch_size=batch)
    sunk = list(sink_dataset(resumed, batch, num_workers=2).create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert len(whole) == 8 and len(sunk) == 5
    for got, want in zip(sunk, whole[3:]):
        assert len(got) == 2 and got[0].dtype == np.float32 and got[1].dtype == np.uint8
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


class HostStepsPerCall:
    """A stand-in for ``step_feeds.DatasetSink``, which needs an Ascend or GPU device: each call runs ``n`` real
    steps on host batches and returns the last one's losses, as a sink call does. It isolates the training loop's
    handling of several steps per call; the sink itself is not run here."""

    unusable = None

    def __init__(self, batches, n, runs=None):
        from src.step_feeds import HostBatches
        self.host, self.steps_per_call, self.runs = HostBatches(batches), n, runs or n  # runs: steps really run

    def run(self, step):
        for _ in range(self.runs):
            values = self.host.run(step)
        return values

    def inputs(self):
        return self.host.inputs()

    def close(self):
        pass


def test_several_steps_per_call_log_save_and_resume_on_call_boundaries(two_crops, tmp_path, caplog):
    """``Trainer.fit`` with 4 steps per call (the stand-in above): losses kept at steps 4, 8, 12 only, equal to the
    per-step run's; checkpoints, logs, validation and the end on call boundaries; the parameters those of the
    per-step run, bit for bit; a resume from step 8 ends there too; and calls that train more steps than they say
    stop the run at the first read, before anything is saved."""
    from src.checkpoint.loader import load_model
    from src.data.train_dataset import batches
    from src.step_feeds import HostBatches
    from src.validation import Validator

    optim = Config(lr=1e-3, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, clip_grad_norm=0.0, milestones=[6],
                   gamma=0.5)
    images, batch = sorted(two_crops.iterdir()), 2

    def stream(start, steps):
        return batches(TrainPairs(images, "sr_x2", (steps - start) * batch, seed=0, start=start * batch,
                                  batch_size=batch), batch)

    ms.set_seed(0)
    nets = twin_models(IPT(IPTConfig(tasks=("sr_x2",), **TINY)), 2)
    caplog.set_level(logging.INFO, logger="ipt")
    runs = {}
    for name, net, feed in [("per_step", nets[0], HostBatches(stream(0, 12))),
                            ("per_call", nets[1], HostStepsPerCall(stream(0, 12), 4))]:
        Trainer(net, "sr_x2", optim).fit(feed, 12, tmp_path / name, log_every=4, save_every=8,
                                         validate=Validator(net, ("sr_x2",), images, 48), val_every=4)
        runs[name] = read_losses(tmp_path / name / "loss.csv")
    with open(tmp_path / "per_call" / "val.csv", newline="") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [4, 8, 12]
    assert sorted(runs["per_call"]) == [4, 8, 12] and runs["per_call"] == {s: runs["per_step"][s] for s in (4, 8, 12)}
    assert "step 4/12 task sr_x2: graph compiled and run in" in caplog.text and "(4 steps)" in caplog.text
    assert re.search(r"step 8/12 task sr_x2 L1 [\d.]+ contrastive 0\.0000 lr 0\.0005 ", caplog.text)
    assert sorted(p.name for p in (tmp_path / "per_call").glob("*.ckpt")) == [
        "ipt_sr_x2_last.ckpt", "ipt_sr_x2_last.opt.ckpt", "ipt_sr_x2_step8.ckpt", "ipt_sr_x2_step8.opt.ckpt"]
    for p in nets[0].get_parameters():
        np.testing.assert_array_equal(nets[1].parameters_dict()[p.name].asnumpy(), p.asnumpy(), err_msg=p.name)
    checkpoint = tmp_path / "per_call" / "ipt_sr_x2_step8.ckpt"
    ipt, _ = load_model(checkpoint)
    trainer = Trainer(ipt, "sr_x2", optim)
    trainer.resume(checkpoint, 8)
    trainer.fit(HostStepsPerCall(stream(8, 12), 4), 12, tmp_path / "per_call", log_every=4, save_every=8)
    for p in nets[0].get_parameters():
        np.testing.assert_array_equal(ipt.parameters_dict()[p.name].asnumpy(), p.asnumpy(), err_msg=p.name)
    assert read_losses(tmp_path / "per_call" / "loss.csv") == runs["per_call"]
    from src.errors import IPTError
    with pytest.raises(IPTError, match=re.escape("the step graph has run 5 steps where the training loop counts 4 (4 "
                                                 "per call): the calls do not train the steps they should; set "
                                                 "sink_size 0")):
        Trainer(ipt, "sr_x2", optim).fit(HostStepsPerCall(stream(0, 15), 4, runs=5), 12, tmp_path / "miscounted",
                                         log_every=4, save_every=4)
    assert not (tmp_path / "miscounted").exists()


# --- bad input: one line on stderr, exit status 2 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty").mkdir()
    (d / "tiny").mkdir()
    write_rgb(d / "tiny" / "small.png", skdata.coffee()[:30, :40])
    (d / "good").mkdir()
    write_rgb(d / "good" / "coffee.png", skdata.coffee()[:120, :120])
    save_checkpoint(IPT(IPTConfig(tasks=("sr_x2",), **TINY)), d / "sr_x2.ckpt")
    return d


@pytest.mark.parametrize("args, message", [
    (["--data.train_dir", "{d}/missing"], "{d}/missing: no such file or directory"),
    (["--data.train_dir", "{d}/empty"], "{d}/empty: no image files in this folder or its sub-folders"),
    ([], "--data.train_dir is required"),
    (["--data.train_dir", "{d}/good", "--task", "sr_x5"], "unknown task 'sr_x5'; valid tasks: sr_x2"),
    (["--data.train_dir", "{d}/good", "--ckpt_path", "{d}/sr_x2.ckpt", "--task", "denoise_30"],
     "task(s) ['denoise_30'] not in the checkpoint; it has: sr_x2"),
    (["--data.train_dir", "{d}/tiny", "--task", "sr_x2"], "small.png: 30x40 pixels is too small for training"),
    (["--data.train_dir", "{d}/good", "--task", "derain"], "derain training needs --data.rain_dir"),
    (["--data.train_dir", "{d}/good", "--resume", "{d}/sr_x2.ckpt"], "not a checkpoint written by train.py"),
    (["--data.train_dir", "{d}/good", "--task", "sr_x2", "--data.num_workers", "0"],
     "data.num_workers is 0; expected auto or a count from 1 to"),
    (["--data.train_dir", "{d}/good", "--task", "sr_x2", "--data.num_workers", "100000"],
     "data.num_workers is 100000; expected auto or a count from 1 to"),
    (["--data.train_dir", "{d}/good", "--task", "sr_x2", "--data.num_workers", "many"],
     "data.num_workers is 'many'; expected auto or a count from 1 to"),
    # dataset sink mode: refused before any image is read (the folder does not exist)
    (["--data.train_dir", "{d}/missing", "--task", "sr_x2", "--sink_size", "4", "--steps", "8", "--log_every", "4",
      "--save_every", "0"], "sink_size 4: dataset sink mode runs on Ascend and GPU only (mindspore.data_sink); this "
                            "run is on CPU: set sink_size 0"),
    (["--data.train_dir", "{d}/missing", "--mode", "pretrain", "--sink_size", "4", "--steps", "8", "--log_every",
      "4", "--save_every", "0"], "sink_size 4: dataset sink mode trains one task (fine-tuning); pre-training draws "
                                 "one of 6 tasks per step"),
    (["--data.train_dir", "{d}/missing", "--task", "sr_x2", "--sink_size", "4", "--steps", "8", "--log_every", "6"],
     "sink_size 4 does not divide log_every 6: each sink call trains 4 steps"),
    (["--data.train_dir", "{d}/good", "--task", "sr_x2", "--sink_size", "-1"], "sink_size is -1; it must be at "
                                                                               "least 0"),
])
def test_bad_input_is_one_line(bad_inputs, args, message):
    args = [a.format(d=bad_inputs) for a in args]
    proc = subprocess.run([sys.executable, "train.py", *args, *TINY_FLAGS, "--output_dir", str(bad_inputs / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING]")
             and not re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING) ", ln)]  # log lines (setup's CPU line)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message.format(d=bad_inputs) in lines[0], lines[0]
