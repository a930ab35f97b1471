"""Training IPT: the graph-mode step, optimizer state on disk, and the loop (logs, checkpoints, loss curve).

A ``Trainer`` fine-tunes one task of an IPT with L1 and Adam. Its checkpoints are ours (``save_checkpoint``, loadable
by every entry script with no flags) with ``step`` and the data-stream settings as extra scalars; beside each
``X.ckpt`` it writes ``X.opt.ckpt``, the optimizer state (Adam moments and powers, loss scale) for resuming exactly.
"""
import csv
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import mindspore as ms
from mindspore import nn, ops, Parameter, Tensor

from src.checkpoint.loader import save_checkpoint
from src.data.image_io import write_png
from src.errors import CheckpointError, IPTError
from src.fileio import atomic_write
from src.losses import L1Loss, RestorationLoss
from src.runtime import log

# Dynamic loss scaling for float16 compute (the official trainer's DynamicLossScaleUpdateCell settings).
LOSS_SCALE_INIT, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW = 2.0 ** 16, 2.0, 1000


class ScaledLoss(nn.Cell):
    """``loss_net(lr, hr) * scale``, so that float16 gradients do not underflow."""

    def __init__(self, loss_net, scale):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.scale = scale

    def construct(self, lr, hr):
        return self.loss_net(lr, hr) * self.scale


class TrainStep(nn.Cell):
    """One optimisation step, compiled as one graph: loss and gradients of ``loss_net(lr, hr)`` with respect to the
    optimizer's parameters, optional global-norm clipping (``clip_norm`` > 0), then the optimizer's update.

    With ``loss_scaling`` the loss is multiplied by a dynamic scale before differentiation and the gradients are
    divided by it; a step whose gradients are not finite is skipped and halves the scale, ``LOSS_SCALE_WINDOW``
    good steps in a row double it. Returns the (unscaled) loss.
    """

    def __init__(self, loss_net, optimizer, clip_norm=0.0, loss_scaling=False):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.clip_norm = float(clip_norm)
        self.loss_scaling = loss_scaling
        if loss_scaling:
            self.loss_scale = Parameter(Tensor(LOSS_SCALE_INIT, ms.float32), name="loss_scale", requires_grad=False)
            self.good_steps = Parameter(Tensor(0, ms.int32), name="good_steps", requires_grad=False)
            loss_net = ScaledLoss(loss_net, self.loss_scale)
        self.loss_net = loss_net
        self.grad_fn = ms.value_and_grad(loss_net, None, optimizer.parameters)

    def update(self, grads):
        if self.clip_norm > 0:
            grads = ops.clip_by_global_norm(grads, self.clip_norm)
        return self.optimizer(grads)

    def construct(self, lr, hr):
        loss, grads = self.grad_fn(lr, hr)
        if not self.loss_scaling:
            self.update(grads)
            return loss
        scale = self.loss_scale
        loss = loss / scale
        grads = tuple([g / scale for g in grads])
        finite = ms.amp.all_finite(grads)
        if finite:
            self.update(grads)
        grown = ops.select(self.good_steps == LOSS_SCALE_WINDOW - 1, scale * LOSS_SCALE_FACTOR, scale)
        ops.assign(self.loss_scale, ops.select(finite, grown, ops.maximum(scale / LOSS_SCALE_FACTOR, 1.0)))
        ops.assign(self.good_steps, ops.select(finite, (self.good_steps + 1) % LOSS_SCALE_WINDOW, 0))
        return loss


def learning_rate(optim_cfg, step):
    """The learning rate of the step that follows ``step`` completed ones: lr * gamma^(milestones reached)."""
    return optim_cfg.lr * optim_cfg.gamma ** sum(step >= m for m in optim_cfg.milestones)


def opt_state_path(ckpt_path):
    """``X.opt.ckpt`` beside ``X.ckpt``."""
    return Path(ckpt_path).with_suffix(".opt.ckpt")


class Trainer:
    """Fine-tunes ``task`` of ``ipt`` (the body and that task's head, tail and query) with L1 and Adam.

    ``optim_cfg``: lr, betas, eps, weight_decay, clip_grad_norm, milestones, gamma. ``step`` counts completed steps.
    """

    def __init__(self, ipt, task, optim_cfg, loss_scaling=False):
        self.ipt, self.task, self.optim_cfg = ipt, task, optim_cfg
        net = ipt.task_net(task)
        beta1, beta2 = optim_cfg.betas
        self.optimizer = nn.Adam(net.trainable_params(), learning_rate=float(optim_cfg.lr), beta1=beta1, beta2=beta2,
                                 eps=optim_cfg.eps, weight_decay=optim_cfg.weight_decay)
        self.train_step = TrainStep(RestorationLoss(net, L1Loss()), self.optimizer, optim_cfg.clip_grad_norm,
                                    loss_scaling)
        self.train_step.set_train()
        self.step = 0

    def state(self):
        """The optimizer's own parameters (not the model's) by name: moments, powers, step counter, loss scale."""
        model = {p.name for p in self.ipt.get_parameters()}
        return {p.name: p for p in self.train_step.get_parameters() if p.name not in model}

    def save(self, path, extra=None):
        """Our checkpoint at ``path`` with ``step`` and ``extra`` scalars, and its optimizer state beside it; the
        state goes first, each file atomically."""
        opt_path = opt_state_path(path)
        opt_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = opt_path.with_name(f".{opt_path.name}.{os.getpid()}.tmp.ckpt")
        try:
            ms.save_checkpoint([{"name": k, "data": p} for k, p in self.state().items()], str(tmp),
                               append_dict={"step": self.step})
            os.replace(tmp, opt_path)
        finally:
            if tmp.exists():
                tmp.unlink()
        save_checkpoint(self.ipt, path, extra={**(extra or {}), "step": self.step})

    def resume(self, path, step):
        """Restore the optimizer state saved beside our checkpoint ``path`` (whose weights are already loaded and
        whose stored step is ``step``)."""
        opt_path = opt_state_path(path)
        if not opt_path.is_file():
            raise CheckpointError(f"{path}: no optimizer state {opt_path.name} beside it; resume needs a checkpoint "
                                  f"written by train.py (start from it with --ckpt_path instead)")
        try:
            saved = ms.load_checkpoint(str(opt_path))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{opt_path}: unreadable optimizer state ({str(exc).splitlines()[0][:120]})") \
                from None
        saved_step = int(saved.pop("step").asnumpy()) if "step" in saved else None
        if saved_step != step:
            raise CheckpointError(f"{opt_path} is the optimizer state of step {saved_step}, but {path} is step "
                                  f"{step}; the pair is inconsistent (interrupted save?)")
        own = self.state()
        if set(saved) != set(own):
            diff = sorted(set(saved) ^ set(own))
            raise CheckpointError(f"{opt_path}: optimizer state does not match this run (differs in {diff[:3]}); "
                                  f"was it saved with another compute_dtype or task?")
        for name, param in own.items():
            value = saved[name].asnumpy()
            if value.shape != tuple(param.shape):
                raise CheckpointError(f"{opt_path}: {name} has shape {value.shape}, expected {tuple(param.shape)}")
            param.set_data(Tensor(value, param.dtype))
        self.step = step

    def fit(self, batches, steps, output_dir, log_every=100, save_every=0, extra=None):
        """Train on ``batches`` ((lr, hr) Tensors) from ``self.step`` up to ``steps``.

        Logs ``step N/M loss X lr Y s/step`` every ``log_every`` steps (loss averaged over them); a progress bar on
        stdout only when it is a terminal. Writes ``ipt_<task>_step<N>.ckpt`` every ``save_every`` steps (0: never),
        ``ipt_<task>_last.ckpt`` at the end, and ``loss.csv`` / ``loss.png`` with each checkpoint.
        """
        output_dir = Path(output_dir)
        history = LossHistory(output_dir / "loss.csv", self.step)
        bar = ProgressBar(steps, sys.stdout) if sys.stdout.isatty() else None
        window, tic, compiled = [], time.perf_counter(), False
        for lr, hr in batches:
            if self.step >= steps:
                break
            rate = learning_rate(self.optim_cfg, self.step)
            self.optimizer.learning_rate.set_data(Tensor(rate, ms.float32))
            loss = float(self.train_step(lr, hr).asnumpy())
            self.step += 1
            if not math.isfinite(loss):
                if not self.train_step.loss_scaling:
                    raise IPTError(f"the loss is {loss} at step {self.step}: training diverged; lower optim.lr or "
                                   f"set optim.clip_grad_norm")
                log.warning("step %d: loss %s, update skipped and loss scale lowered", self.step, loss)
            history.add(self.step, loss, rate)
            if bar:
                bar.update(self.step, loss)
            if not compiled:
                compiled = True
                self._log(bar, "step %d/%d loss %.4f lr %.3g (graph compilation included: %.1f s)", self.step, steps,
                          loss, rate, time.perf_counter() - tic)
                tic = time.perf_counter()
            else:
                window.append(loss)
            if window and (self.step % log_every == 0 or self.step == steps):
                toc = time.perf_counter()
                self._log(bar, "step %d/%d loss %.4f lr %.3g %.3f s/step", self.step, steps, float(np.mean(window)),
                          rate, (toc - tic) / len(window))
                window, tic = [], toc
            if save_every and self.step % save_every == 0:
                self._save(output_dir / f"ipt_{self.task}_step{self.step}.ckpt", extra, history, bar)
        if bar:
            bar.clear()
        if self.step < steps:
            raise RuntimeError(f"the data stream ended at step {self.step} of {steps}")
        self._save(output_dir / f"ipt_{self.task}_last.ckpt", extra, history, None)

    def _save(self, path, extra, history, bar):
        self.save(path, extra)
        history.write(f"L1 loss, {self.task}")
        self._log(bar, "saved %s", path)

    @staticmethod
    def _log(bar, *args):
        if bar:
            bar.clear()
        log.info(*args)


class LossHistory:
    """(step, loss, lr) rows, kept in ``csv_path`` with a curve beside it (``loss.png``). Rows of an earlier run in
    the same file are kept up to ``start`` (the step a resumed run starts from)."""

    def __init__(self, csv_path, start=0):
        self.csv_path = Path(csv_path)
        self.rows = []
        if start and self.csv_path.is_file():
            with open(self.csv_path, newline="", encoding="utf-8") as f:
                self.rows = [(int(r["step"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)
                             if int(r["step"]) <= start]

    def add(self, step, loss, lr):
        self.rows.append((step, loss, lr))

    def write(self, title):
        with atomic_write(self.csv_path, "w") as f:
            f.write("step,loss,lr\n")
            f.writelines(f"{s},{loss:.6g},{lr:.6g}\n" for s, loss, lr in self.rows)
        finite = [(s, v) for s, v, _ in self.rows if math.isfinite(v)]
        if finite:
            steps, values = zip(*finite)
            write_png(self.csv_path.with_suffix(".png"), plot_curve(steps, values, title))


def plot_curve(steps, values, title, height=400, width=720):
    """An RGB uint8 plot of ``values`` against ``steps``: raw (light) and moving average (dark), y axis up to the
    99th percentile so that early spikes do not flatten the rest."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 80, 20, 36, 44
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    x0, x1 = steps.min(), max(steps.max(), steps.min() + 1)
    lo, hi = values.min(), np.percentile(values, 99)
    hi = hi if hi > lo else lo + 1.0

    def xy(s, v):
        x = left + (s - x0) / (x1 - x0) * (width - left - right)
        y = top + (hi - np.clip(v, lo, hi)) / (hi - lo) * (height - top - bottom)
        return np.stack([x, y], axis=1).round().astype(np.int32)

    font, grey, ink = cv2.FONT_HERSHEY_SIMPLEX, (200, 200, 200), (40, 40, 40)
    for v in np.linspace(lo, hi, 5):
        y = int(xy(np.array([x0]), np.array([v]))[0, 1])
        cv2.line(img, (left, y), (width - right, y), grey, 1)
        cv2.putText(img, f"{v:.4g}", (8, y + 4), font, 0.4, ink, 1, cv2.LINE_AA)
    for s in np.linspace(x0, x1, 5):
        x = int(xy(np.array([s]), np.array([lo]))[0, 0])
        cv2.putText(img, f"{s:.0f}", (x - 12, height - bottom + 18), font, 0.4, ink, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (width - right, height - bottom), ink, 1)
    cv2.polylines(img, [xy(steps, values)], False, (160, 190, 230), 1, cv2.LINE_AA)
    k = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(k) / k, mode="valid")
    cv2.polylines(img, [xy(steps[k - 1:], smooth)], False, (20, 60, 160), 2, cv2.LINE_AA)
    cv2.putText(img, title, (left, 24), font, 0.55, ink, 1, cv2.LINE_AA)
    cv2.putText(img, "step", (width // 2 - 14, height - 8), font, 0.45, ink, 1, cv2.LINE_AA)
    return img


class ProgressBar:
    """A one-line bar redrawn in place on a terminal ``stream``."""

    def __init__(self, total, stream, width=30):
        self.total, self.stream, self.width = total, stream, width

    def update(self, step, loss):
        filled = self.width * step // self.total
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {step}/{self.total} loss {loss:.4f}")
        self.stream.flush()

    def clear(self):
        self.stream.write("\r\033[K")
        self.stream.flush()
