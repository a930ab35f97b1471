"""Pre-training on six tasks: the contrastive loss, the procedural rain, the multi-task data stream, skipped files,
and train.py with configs/pretrain_tiny.yaml end to end (real photos, real MindSpore graphs, real processes)."""
import csv
import os
import signal
import time
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import mindspore as ms
import pytest
from skimage import data as skdata

from conftest import TINY
from src.checkpoint.loader import read_weights
from src.data.degradations import procedural_rain
from src.data.image_io import list_images
from src.data.train_dataset import MAX_SKIPS, TrainPairs, task_for_step
from src.errors import ImageError
from src.losses import L1Loss, RestorationLoss, SupConLoss
from src.models.ipt import IPT
from src.tasks import OFFICIAL_PRETRAIN_ORDER
from train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "pretrain_tiny.yaml"


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]) if rgb.ndim == 3 else rgb)
    return path


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """An ImageNet-like tree: train/<class>/*.JPEG, one grayscale photo, one corrupt file, one hidden folder."""
    root = tmp_path_factory.mktemp("imagenet") / "train"
    write_rgb(root / "n01" / "astronaut.JPEG", skdata.astronaut()[:300, :300])
    write_rgb(root / "n01" / "chelsea.JPEG", skdata.chelsea())
    write_rgb(root / "n02" / "coffee.JPEG", skdata.coffee()[:300, :300])
    write_rgb(root / "n02" / "camera.JPEG", skdata.camera()[:256, :256])  # grayscale
    write_rgb(root / "n03" / "rocket.png", skdata.rocket())
    (root / "n03" / "broken.JPEG").write_bytes(b"\xff\xd8 truncated jpeg")
    write_rgb(root / ".cache" / "hidden.png", skdata.coffee())
    return root


# --- the contrastive loss ------------------------------------------------------------------------------------------

def supcon_numpy(tokens, temperature, groups=1):
    """SupCon by its definition, one anchor at a time, float64."""
    n, t, d = tokens.shape
    z = tokens.reshape(n * t, d).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    image = np.repeat(np.arange(n), t)
    losses = []
    for i in range(n * t):
        others = [a for a in range(n * t) if a != i and image[a] % groups == image[i] % groups]
        log_denominator = np.log(np.sum([np.exp(z[i] @ z[a] / temperature) for a in others]))
        positives = [p for p in range(n * t) if p != i and image[p] == image[i]]
        losses.append(-np.mean([z[i] @ z[p] / temperature - log_denominator for p in positives]))
    return float(np.mean(losses))


@pytest.mark.parametrize("shape, groups", [((4, 5, 6), 1), ((4, 5, 6), 2), ((3, 4, 8), 1)])
def test_contrastive_loss_matches_numpy(shape, groups):
    tokens = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32) * 3
    tokens[0, 1] += 5  # some structure: similar tokens in image 0
    got = float(SupConLoss(0.07, groups)(ms.Tensor(tokens)).asnumpy())
    np.testing.assert_allclose(got, supcon_numpy(tokens, 0.07, groups), rtol=2e-5)


@pytest.mark.parametrize("shape, groups", [((3, 4, 8), 1), ((4, 3, 6), 2)])
def test_contrastive_loss_gradient_matches_numpy(shape, groups):
    """The gradient MindSpore derives from the MatMul form equals central differences of the NumPy definition."""
    tokens = np.random.default_rng(5).normal(size=shape) * 2
    tokens[1, 0] += 3
    got = ms.grad(SupConLoss(0.07, groups))(ms.Tensor(tokens, ms.float32)).asnumpy()
    expected = np.zeros(shape)
    h = 1e-5
    for index in np.ndindex(*shape):
        up, down = tokens.copy(), tokens.copy()
        up[index] += h
        down[index] -= h
        expected[index] = (supcon_numpy(up, 0.07, groups) - supcon_numpy(down, 0.07, groups)) / (2 * h)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=2e-4 * np.abs(expected).max())


def test_contrastive_loss_rewards_images_whose_tokens_agree():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 1, 16))
    tight = centres + 0.05 * rng.normal(size=(4, 6, 16))
    loose = rng.normal(size=(4, 6, 16))
    loss = SupConLoss(0.07)
    assert float(loss(ms.Tensor(tight, ms.float32)).asnumpy()) < float(loss(ms.Tensor(loose, ms.float32)).asnumpy())


class Part(ms.nn.Cell):
    """Output ``index`` of a RestorationLoss (0 total, 1 L1, 2 contrastive), to differentiate one part alone."""

    def __init__(self, loss, index):
        super().__init__(auto_prefix=False)
        self.loss, self.index = loss, index

    def construct(self, lr, hr):
        return self.loss(lr, hr)[self.index]


def test_l1_reaches_the_body_with_the_contrastive_term_on(tiny_config):
    """The official trainer's contrastive branch fed the head's output to the tail, so L1 never reached the body;
    here the gradient of L1 + 0.1 * contrastive is the gradient of L1 (non-zero in every body and tail tensor)
    plus 0.1 times the contrastive one."""
    ms.set_seed(0)
    ipt = IPT(tiny_config(("sr_x2", "denoise_30")))
    loss = RestorationLoss(ipt.task_net("sr_x2", return_tokens=True), L1Loss(), SupConLoss(0.07), 0.1)
    params = ipt.task_net("sr_x2").trainable_params()
    rng = np.random.default_rng(0)
    lr = ms.Tensor(rng.uniform(0, 255, (2, 3, 48, 48)).astype(np.float32))
    hr = ms.Tensor(rng.uniform(0, 255, (2, 3, 96, 96)).astype(np.float32))
    grads = [[g.asnumpy() for g in ms.grad(Part(loss, k), None, params)(lr, hr)] for k in range(3)]
    for p, total, l1, con in zip(params, *grads):
        np.testing.assert_allclose(total, l1 + 0.1 * con, rtol=1e-4, atol=1e-6 * np.abs(total).max(), err_msg=p.name)
        if p.name.startswith(("body.", "tasks.sr_x2.tail.")):
            assert np.abs(l1).max() > 0, f"{p.name} gets no gradient from L1"
        if p.name.startswith("tasks.sr_x2.tail."):
            assert not np.any(con), p.name  # the tail is after the tokens


# --- data ----------------------------------------------------------------------------------------------------------

def test_procedural_rain_is_seeded_and_varied():
    layers = [procedural_rain(48, np.random.default_rng(s)) for s in range(12)]
    again = procedural_rain(48, np.random.default_rng(3))
    np.testing.assert_array_equal(layers[3], again)
    for layer in layers:
        assert layer.shape == (48, 48) and layer.dtype == np.float32
        assert layer.min() >= 0 and layer.max() <= 255 and layer.max() > 20
    coverage = [(layer > 10).mean() for layer in layers]
    assert max(coverage) > 2 * min(coverage)  # density varies
    # streak direction varies: the dominant gradient orientation of the layers is not always the same
    angles = []
    for layer in layers:
        gy, gx = np.gradient(cv2.GaussianBlur(layer, (0, 0), 1.0))
        angles.append(0.5 * np.arctan2(2 * (gx * gy).sum(), ((gx ** 2) - (gy ** 2)).sum()))
    assert np.ptp(angles) > np.deg2rad(15)


def test_task_schedule_is_shared_and_uniform():
    tasks = OFFICIAL_PRETRAIN_ORDER
    drawn = [task_for_step(tasks, 0, s) for s in range(600)]
    assert drawn == [task_for_step(tasks, 0, s) for s in range(600)]
    counts = [drawn.count(t) for t in tasks]
    assert min(counts) > 70, counts
    assert drawn != [task_for_step(tasks, 1, s) for s in range(600)]


def test_list_images_reads_a_tree(image_tree):
    names = [p.relative_to(image_tree).as_posix() for p in list_images(image_tree, recursive=True)]
    assert names == ["n01/astronaut.JPEG", "n01/chelsea.JPEG", "n02/camera.JPEG", "n02/coffee.JPEG",
                     "n03/broken.JPEG", "n03/rocket.png"]


def test_multi_task_pairs_shards_and_skipped_files(image_tree):
    images = list_images(image_tree, recursive=True)
    broken = [str(p) for p in images].index(str(image_tree / "n03" / "broken.JPEG"))
    full = TrainPairs(images, OFFICIAL_PRETRAIN_ORDER, length=24, seed=5, batch_size=4, procedural_rain=True,
                      augment=False)
    shards = [TrainPairs(images, OFFICIAL_PRETRAIN_ORDER, length=12, seed=5, batch_size=2, procedural_rain=True,
                         augment=False, num_shards=2, shard_id=r) for r in range(2)]
    skipped = set()
    for step in range(6):
        task = task_for_step(OFFICIAL_PRETRAIN_ORDER, 5, step)
        scale = {"sr_x2": 2, "sr_x3": 3, "sr_x4": 4}.get(task, 1)
        whole = [full[4 * step + j] for j in range(4)]
        for lr, hr, skips, _ in whole:
            assert lr.shape == (3, 48, 48) and hr.shape == (3, 48 * scale, 48 * scale)
            assert skips.shape == (MAX_SKIPS,)
            skipped |= set(skips[skips >= 0].tolist())
        # rank r's item b of the step is item b * 2 + r of the single process's global batch
        for r in range(2):
            for b in range(2):
                lr, hr, _, _ = shards[r][2 * step + b]
                np.testing.assert_array_equal(lr, whole[2 * b + r][0])
                np.testing.assert_array_equal(hr, whole[2 * b + r][1])
    assert skipped == {broken}  # 24 samples over 6 images: the broken one came up and was replaced
    gray = [str(p) for p in images].index(str(image_tree / "n02" / "camera.JPEG"))
    assert gray in {full._image_index(g) for g in range(24)}


def test_only_unusable_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    write_rgb(tmp_path / "small.png", skdata.coffee()[:30, :40])
    pairs = TrainPairs(sorted(tmp_path.iterdir()), OFFICIAL_PRETRAIN_ORDER, length=4, procedural_rain=True)
    with pytest.raises(ImageError, match=r"none of the 2 training image\(s\) can be used .*/a.png: cannot decode"):
        pairs[0]


# --- train.py --mode pretrain end to end ---------------------------------------------------------------------------

def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pretrained(image_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    assert train_main(["--config", str(TINY_CONFIG), "--data.train_dir", str(image_tree), "--steps", "4",
                       "--output_dir", str(out)]) == 0
    return out


def test_pretrain_writes_a_six_task_checkpoint(pretrained):
    weights = read_weights(pretrained / "ipt_pretrain_last.ckpt")
    assert weights.config.tasks == OFFICIAL_PRETRAIN_ORDER
    assert {k: getattr(weights.config, k) for k in TINY} == TINY
    assert weights.extra == {"step": 4, "seed": 0, "batch_size": 4}
    rows = read_rows(pretrained / "loss.csv")
    assert [(int(r["step"]), r["task"]) for r in rows] == \
        [(s + 1, task_for_step(OFFICIAL_PRETRAIN_ORDER, 0, s)) for s in range(4)]
    for r in rows:
        total, l1, con = float(r["loss"]), float(r["l1"]), float(r["contrastive"])
        assert con > 0 and abs(total - (l1 + 0.1 * con)) < 1e-3 * total
    assert sorted(p.name for p in pretrained.glob("*.ckpt")) == [
        "ipt_pretrain_last.ckpt", "ipt_pretrain_last.opt.ckpt", "ipt_pretrain_step2.ckpt",
        "ipt_pretrain_step2.opt.ckpt", "ipt_pretrain_step4.ckpt", "ipt_pretrain_step4.opt.ckpt"]
    assert cv2.imread(str(pretrained / "loss.png")) is not None


def test_fine_tune_one_task_of_our_six_task_checkpoint(pretrained, image_tree, tmp_path):
    ckpt = pretrained / "ipt_pretrain_last.ckpt"
    assert train_main(["--ckpt_path", str(ckpt), "--task", "sr_x3", "--data.train_dir", str(image_tree),
                       "--output_dir", str(tmp_path), "--steps", "1", "--data.batch_size", "2",
                       "--data.num_workers", "1"]) == 0
    tuned, before = read_weights(tmp_path / "ipt_sr_x3_last.ckpt"), read_weights(ckpt)
    assert tuned.config.tasks == ("sr_x3",)
    assert set(tuned.params) == {k for k in before.params if not k.startswith("tasks.") or ".sr_x3." in k}


def test_eval_restores_images_with_the_six_task_checkpoint(pretrained, tmp_path):
    # one 48x48 tile: main has no tiler yet
    photo = write_rgb(tmp_path / "in" / "coffee.png", skdata.coffee()[100:148, 200:248])
    proc = subprocess.run([sys.executable, "eval.py", "--ckpt_path", str(pretrained / "ipt_pretrain_last.ckpt"),
                           "--task", "denoise_50", "--input", str(photo), "--output", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    restored = cv2.imread(str(tmp_path / "out" / "coffee.png"))
    assert restored is not None and restored.shape == (48, 48, 3)


def test_sigkill_then_resume_ends_where_an_uninterrupted_run_does(pretrained, image_tree, tmp_path):
    """A real training process, checkpointing every step, is killed with SIGKILL just after its step-2
    checkpoint (mid-step or mid-save); every checkpoint left is whole, and --resume auto from them reaches the
    uninterrupted run's parameters exactly."""
    args = [sys.executable, "train.py", "--config", str(TINY_CONFIG), "--data.train_dir", str(image_tree),
            "--steps", "4", "--output_dir", str(tmp_path), "--save_every", "1"]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "ipt_pretrain_step2.ckpt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "training ended before the kill"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(tmp_path.glob("ipt_*.ckpt"))
    assert not (tmp_path / "ipt_pretrain_last.ckpt").exists()
    for path in left:
        if path.name.endswith(".opt.ckpt"):
            continue
        assert path.with_suffix(".opt.ckpt").is_file()
        assert read_weights(path).extra["step"] == int(path.stem.rsplit("step", 1)[1])  # whole and readable
    assert subprocess.run(args + ["--resume", "auto"], cwd=ROOT, capture_output=True, env=env,
                          timeout=600).returncode == 0
    resumed, straight = read_weights(tmp_path / "ipt_pretrain_last.ckpt"), read_weights(pretrained /
                                                                                        "ipt_pretrain_last.ckpt")
    assert resumed.extra == straight.extra
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)
    assert [r["step"] for r in read_rows(tmp_path / "loss.csv")] == ["1", "2", "3", "4"]


# --- bad input: one line on stderr, exit status 2 ------------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, pretrained):
    d = tmp_path_factory.mktemp("bad")
    (d / "notes").mkdir()
    (d / "notes" / "readme.txt").write_text("no images here")
    (d / "corrupt" / "sub").mkdir(parents=True)
    (d / "corrupt" / "a.png").write_bytes(b"\x89PNG truncated")
    (d / "corrupt" / "sub" / "b.JPEG").write_bytes(b"")
    write_rgb(d / "good" / "coffee.png", skdata.coffee()[:120, :120])
    return d


@pytest.mark.parametrize("args, message", [
    (["--data.train_dir", "{d}/notes"], "{d}/notes: no image files in this folder or its sub-folders"),
    (["--data.train_dir", "{d}/corrupt"], "none of the 2 training image(s) can be used (unreadable or too small); "
                                          "the first: {d}/corrupt/a.png: cannot decode image"),
    (["--data.train_dir", "{d}/good", "--optim.lr", "-1e-4"], "optim.lr is -0.0001; it must be positive"),
    (["--data.train_dir", "{d}/good", "--tasks", "[sr_x2, sr_x8]"], "unknown task 'sr_x8'; valid tasks: sr_x2"),
    (["--data.train_dir", "{d}/good", "--mode", "pre-train"], "mode is 'pre-train'; expected one of finetune, "
                                                             "pretrain"),
    (["--data.train_dir", "{d}/good", "--loss.contrastive_weight", "-0.1"], "loss.contrastive_weight is -0.1"),
    (["--data.train_dir", "{d}/good", "--loss.contrastive_groups", "3"],
     "loss.contrastive_groups 3 does not divide the batch of 4 per worker"),
    (["--data.train_dir", "{d}/good", "--resume", "{p}/ipt_pretrain_step2.ckpt", "--model.n_feats", "8"],
     "{p}/ipt_pretrain_step2.ckpt is a checkpoint of another architecture (model.n_feats 4 in the checkpoint, 8 "
     "in this run)"),
])
def test_bad_pretraining_input_is_one_line(bad_inputs, pretrained, args, message):
    args = [a.format(d=bad_inputs, p=pretrained) for a in args]
    proc = subprocess.run([sys.executable, "train.py", "--config", str(TINY_CONFIG), *args, "--output_dir",
                           str(bad_inputs / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[WARNING]")
             and " INFO " not in ln and " WARNING " not in ln]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message.format(d=bad_inputs, p=pretrained) in lines[0], lines[0]


def test_validation_psnr_per_task(image_tree, tmp_path):
    """--data.val_dir: PSNR-Y of every task on held-out crops, logged, in val.csv and val.png; the same inputs
    every time (a fixed seed), so an unchanged model scores the same."""
    pytest.importorskip("src.metrics")  # psnr_y comes with the tiler branch
    from src.validation import Validator

    val = tmp_path / "val"
    write_rgb(val / "cat.png", skdata.chelsea())
    write_rgb(val / "rocket.png", skdata.rocket())
    out = tmp_path / "out"
    assert train_main(["--config", str(TINY_CONFIG), "--data.train_dir", str(image_tree), "--steps", "2",
                       "--output_dir", str(out), "--data.val_dir", str(val), "--val_every", "1",
                       "--tasks", "[sr_x2, derain]"]) == 0
    rows = read_rows(out / "val.csv")
    assert [(r["step"], r["task"]) for r in rows] == [("1", "sr_x2"), ("1", "derain"), ("2", "sr_x2"),
                                                      ("2", "derain")]
    assert all(0 < float(r["psnr_y"]) < 60 and 0 < float(r["input_psnr_y"]) < 60 for r in rows)
    assert cv2.imread(str(out / "val.png")) is not None
    weights = read_weights(out / "ipt_pretrain_last.ckpt")
    from src.checkpoint.loader import build_model
    ipt = build_model(weights)
    validator = Validator(ipt, ("sr_x2", "derain"), sorted(val.iterdir()), 48, seed=0)
    again = validator()
    for r in rows[2:]:
        assert again[r["task"]][0] == pytest.approx(float(r["psnr_y"]), abs=1e-3)
        assert again[r["task"]][1] == pytest.approx(float(r["input_psnr_y"]), abs=1e-3)


def test_compute_dtype_auto_is_fp16_on_accelerators_only():
    from src.runtime import resolve_compute_dtype

    assert [resolve_compute_dtype("auto", d) for d in ("CPU", "GPU", "Ascend")] == ["float32", "float16", "float16"]
    assert resolve_compute_dtype("float32", "Ascend") == "float32"
