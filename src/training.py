"""Training IPT: the graph-mode step, optimizer state on disk, and the loop (logs, checkpoints, loss curves).

A ``Trainer`` fine-tunes one task of an IPT with L1 and Adam, or pre-trains several with L1 + contrastive. Its
checkpoints are ours (``save_checkpoint``, loadable by every entry script with no flags) with ``step`` and the
data-stream settings as extra scalars; beside each ``X.ckpt`` it writes ``X.opt.ckpt``, the optimizer state (Adam
moments and powers, loss scale) for resuming exactly.
"""
import csv
import hashlib
import math
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import mindspore as ms
from mindspore import amp, nn, ops, Parameter, Tensor
from mindspore._c_expression import MSContext
from mindspore.nn.learning_rate_schedule import LearningRateSchedule
from mindspore.ops.operations.math_ops import NPUClearFloatStatusV2

from src.checkpoint.loader import save_checkpoint
from src.data.image_io import write_png
from src.errors import CheckpointError, IPTError
from src.fileio import atomic_write
from src.data.train_dataset import task_for_step
from src.losses import L1Loss, RestorationLoss
from src.progress import ProgressBar
from src.runtime import log

# Dynamic loss scaling for float16 compute (the official trainer's DynamicLossScaleUpdateCell settings).
LOSS_SCALE_INIT, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW = 2.0 ** 16, 2, 1000


def loss_scaler():
    """``mindspore.amp.DynamicLossScaler`` with the settings above, one per Trainer (its steps of several tasks share
    it). Its two Parameters are named ``loss_scale`` and ``good_steps``, the names the optimizer state on disk uses."""
    scaler = amp.DynamicLossScaler(LOSS_SCALE_INIT, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW)
    scaler.scale_value.name, scaler.counter.name = "loss_scale", "good_steps"
    return scaler


def device_keeps_overflow_status():
    """Whether this device keeps a floating-point overflow status that must be cleared before a step: the Ascend
    Atlas training series (910A), and 910B in saturation mode, as ``nn.TrainOneStepWithLossScaleCell`` decides
    (MindSpore's SoC features ``amp_loss_scale_train_classic_target`` and ``train_hq_dtype_line``). Call after
    ``setup()``."""
    if ms.get_context("device_target") != "Ascend":
        return False
    soc = MSContext.get_instance()
    return bool(soc.ascend_soc_supports_feature("amp_loss_scale_train_classic_target") or (
        soc.ascend_soc_supports_feature("train_hq_dtype_line")
        and os.environ.get("MS_ASCEND_CHECK_OVERFLOW_MODE") == "SATURATION_MODE"))


class ScaledLoss(nn.Cell):
    """``loss_net(lr, hr)`` with its first output (the differentiated total) scaled by ``scaler``, so that float16
    gradients do not underflow."""

    def __init__(self, loss_net, scaler):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.scaler = scaler

    def construct(self, lr, hr):
        total, l1, con = self.loss_net(lr, hr)
        return self.scaler.scale(total), l1, con


class TrainStep(nn.Cell):
    """One optimisation step, compiled as one graph: loss and gradients of ``loss_net(lr, hr)`` (which returns
    (total, L1, contrastive); the total is differentiated) with respect to the optimizer's parameters, their mean
    over the ``world_size`` data-parallel ranks, optional global-norm clipping (``clip_norm`` > 0), then the
    optimizer's update. Returns (total, L1, contrastive), averaged over the ranks.

    With a loss ``scaler`` (``loss_scaler()``, float16 compute) the step is ``mindspore.amp``'s: the loss is scaled
    before differentiation, the gradients unscaled, ``amp.all_finite`` checks them (on Ascend it reads the device's
    overflow status), a step whose gradients are not finite is skipped, and ``scaler.adjust`` halves the scale after
    it or doubles it after ``LOSS_SCALE_WINDOW`` good steps. Where the device keeps an overflow status (910A), it is
    cleared before the forward, as ``nn.TrainOneStepWithLossScaleCell.start_overflow_check`` does.
    """

    def __init__(self, loss_net, optimizer, clip_norm=0.0, scaler=None, world_size=1):
        super().__init__(auto_prefix=False)
        self.optimizer = optimizer
        self.clip_norm = float(clip_norm)
        self.scaler = scaler
        if scaler is not None:
            loss_net = ScaledLoss(loss_net, scaler)
        self.loss_net = loss_net
        self.grad_fn = ms.value_and_grad(loss_net, None, optimizer.parameters, has_aux=True)
        self.world_size = world_size
        self.parallel = world_size > 1
        if self.parallel:
            self.grad_reducer = nn.DistributedGradReducer(optimizer.parameters, mean=True, degree=world_size)
            self.all_reduce = ops.AllReduce()
        self.clear_overflow_status = scaler is not None and device_keeps_overflow_status()
        self.clear_status = NPUClearFloatStatusV2()

    def update(self, grads):
        if self.clip_norm > 0:
            grads = ops.clip_by_global_norm(grads, self.clip_norm)
        return self.optimizer(grads)

    def mean_over_ranks(self, total, l1, con):
        values = ops.stack([total, l1, con])
        if self.parallel:
            values = self.all_reduce(values) / self.world_size
        return values

    def construct(self, lr, hr):
        if self.clear_overflow_status:
            lr = ops.depend(lr, self.clear_status(Tensor([0] * 8, ms.int32)))
        (total, l1, con), grads = self.grad_fn(lr, hr)
        if self.parallel:
            grads = self.grad_reducer(grads)
        if self.scaler is None:
            self.update(grads)
            return self.mean_over_ranks(total, l1, con)
        total = self.scaler.unscale(total)
        grads = self.scaler.unscale(grads)
        finite = amp.all_finite(grads)
        if finite:
            self.update(grads)
        self.scaler.adjust(finite)
        return self.mean_over_ranks(total, l1, con)


def learning_rate(optim_cfg, step):
    """The learning rate of the step that follows ``step`` completed ones: lr * gamma^(milestones reached)."""
    return optim_cfg.lr * optim_cfg.gamma ** sum(step >= m for m in optim_cfg.milestones)


NEVER = 2 ** 31 - 1  # a milestone no run reaches, so that the milestone list is never empty in the graph


class MilestoneSchedule(LearningRateSchedule):
    """``learning_rate(optim_cfg, step)`` in the graph, given to Adam as its dynamic learning rate: the rate of
    the step after ``completed`` steps (a Parameter the step graph advances, see ``CountedStep``), taken from a
    table of the float32 rates ``learning_rate`` gives, so the values are those of the host schedule exactly.

    It reads its own count, not the optimizer's ``global_step``: a float16 step skipped for overflow does not call
    the optimizer, but does count as a step of the schedule, as ``learning_rate`` of the step number says."""

    def __init__(self, optim_cfg):
        super().__init__()
        milestones = sorted(int(m) for m in optim_cfg.milestones) + [NEVER]
        # rates[k]: k milestones reached (duplicated milestones jump several at once, as in learning_rate)
        self.rates = Tensor(np.array([learning_rate(optim_cfg, m) for m in [0] + milestones[:-1]], np.float32))
        self.milestones = Tensor(np.array(milestones, np.int32))
        self.completed = Parameter(Tensor(0, ms.int32), name="schedule_completed_steps", requires_grad=False)

    def construct(self, global_step):
        reached = (self.completed >= self.milestones).astype(ms.int32).sum()
        return self.rates[reached]


class CountedStep(nn.Cell):
    """``step(lr, hr)`` (a TrainStep) with ``hr`` made float32 (the data stream sends it as uint8), then one more
    completed step on ``schedule``'s count, in one graph."""

    def __init__(self, step, schedule):
        super().__init__(auto_prefix=False)
        self.step, self.completed = step, schedule.completed

    def construct(self, lr, hr):
        values = self.step(lr, hr.astype(ms.float32))
        ops.assign_add(self.completed, ops.ones((), ms.int32))
        return values


def opt_state_path(ckpt_path):
    """``X.opt.ckpt`` beside ``X.ckpt``."""
    return Path(ckpt_path).with_suffix(".opt.ckpt")


class Trainer:
    """Trains ``tasks`` of ``ipt`` with L1 (+ ``contrastive_weight`` * SupConLoss on the body's tokens) and Adam.

    One task: fine-tuning (the body and that task's head, tail and query). Several: multi-task pre-training, one
    task per step (``task_for_step(tasks, task_seed, step)``, the data stream's choice) and one Adam over the whole
    model (an adapter's gradient is zero at the other tasks' steps, as in the official trainer). Each task's step is
    its own graph, built and compiled at the task's first step, then reused.

    ``optim_cfg``: lr, betas, eps, weight_decay, clip_grad_norm, milestones, gamma. ``step`` counts completed steps.
    Data parallel: ``world_size`` ranks average their gradients; only ``rank`` 0 writes files.
    """

    def __init__(self, ipt, tasks, optim_cfg, loss_scaling=False, contrastive_weight=0.0, temperature=0.07,
                 contrastive_groups=1, task_seed=0, world_size=1, rank=0):
        self.ipt, self.optim_cfg = ipt, optim_cfg
        self.tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        self.name = self.tasks[0] if len(self.tasks) == 1 else "pretrain"
        self.task_seed, self.world_size, self.rank = task_seed, world_size, rank
        params = (ipt.task_net(self.tasks[0]).trainable_params() if len(self.tasks) == 1
                  else ipt.trainable_params())
        beta1, beta2 = optim_cfg.betas
        self.schedule = MilestoneSchedule(optim_cfg)
        self.optimizer = nn.Adam(params, learning_rate=self.schedule, beta1=beta1, beta2=beta2,
                                 eps=optim_cfg.eps, weight_decay=optim_cfg.weight_decay)
        self.loss_scaling = loss_scaling
        self.scaler = loss_scaler() if loss_scaling else None
        self.contrastive_weight = float(contrastive_weight)
        self.contrastive = (ipt.form.contrastive(temperature, contrastive_groups) if contrastive_weight > 0
                            else None)
        self._steps = {}
        self.step = 0

    def train_step(self, task):
        """The TrainStep of ``task`` (built on first use; compiled on its first call)."""
        if task not in self._steps:
            net = self.ipt.task_net(task, return_tokens=self.contrastive is not None)
            loss = RestorationLoss(net, L1Loss(), self.contrastive, self.contrastive_weight)
            step = TrainStep(loss, self.optimizer, self.optim_cfg.clip_grad_norm, self.scaler, self.world_size)
            step = CountedStep(step, self.schedule)
            step.set_train()
            self._steps[task] = step
        return self._steps[task]

    def task_at(self, step):
        """The task trained at step ``step`` + 1 (``step`` completed before it)."""
        return self.tasks[0] if len(self.tasks) == 1 else task_for_step(self.tasks, self.task_seed, step)

    def state(self):
        """The optimizer's own parameters (not the model's) by name: moments, powers, step counter, loss scale.
        The schedule's count of completed steps is not among them: it is ``step``, set when a run starts."""
        model = {p.name for p in self.ipt.get_parameters()} | {self.schedule.completed.name}
        own = {p.name: p for p in self.optimizer.get_parameters() if p.name not in model}
        if self.scaler is not None:
            own.update({p.name: p for p in (self.scaler.scale_value, self.scaler.counter)})
        return own

    def save(self, path, extra=None):
        """Our checkpoint at ``path`` with ``step`` and ``extra`` scalars, and its optimizer state beside it; the
        state goes first, each file atomically, so the checkpoint file only exists once its pair is complete."""
        opt_path = opt_state_path(path)
        opt_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = opt_path.with_name(f".{opt_path.name}.{os.getpid()}.tmp.ckpt")
        try:
            ms.save_checkpoint([{"name": k, "data": p} for k, p in self.state().items()], str(tmp),
                               append_dict={"step": self.step})
            _fsync(tmp)
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
        saved.pop("learning_rate", None)  # the rate Parameter of states saved before the schedule moved in the graph
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

    def fit(self, feed, steps, output_dir, log_every=100, save_every=0, extra=None, samples_per_step=1,
            validate=None, val_every=0):
        """Train from ``self.step`` up to ``steps`` on the batches of ``feed`` (``step_feeds``: ``HostBatches``, one
        step per host batch, or ``DatasetSink``, ``steps_per_call`` steps per call with the batches sent to the
        device by MindSpore; its steps per call must divide ``steps``, ``log_every``, ``save_every``, ``val_every``
        and the first step, as train.py checks).

        The host never waits for the device between two calls: the learning rate is scheduled in the graph and
        the loss values stay on the device until a log step (or a checkpoint, a validation, a task's first step,
        the end), where they are read all at once; a loss that is not finite (without loss scaling: training
        diverged, an IPTError) is therefore reported at the next log step, before anything is saved. Each call
        gives the losses of its last step: every step's with ``HostBatches``, every ``steps_per_call``-th with a
        sink. At those reads the step graph's own count of steps must equal the loop's (an IPTError otherwise).

        Logs ``step N/M task T L1 X contrastive Y lr Z S samples/s ETA`` every ``log_every`` steps (the step's
        values, averaged over the ranks; the speed over the steps since the previous log) and the compilation time
        of each task's graph; a progress bar on stdout only when it is a terminal. ``samples_per_step`` is the
        global batch. The feed's ``unusable`` (an UnusableFiles) counts and reports the image files the data stream
        skipped. Rank 0 writes ``ipt_<name>_step<N>.ckpt`` every ``save_every`` steps (0: never),
        ``ipt_<name>_last.ckpt`` at the end, and ``loss.csv`` / ``loss.png`` with each checkpoint; ``validate(step)``
        ({task: (PSNR-Y, input PSNR-Y)}) runs every ``val_every`` steps and at the end, into ``val.csv`` /
        ``val.png``.
        """
        output_dir = Path(output_dir)
        writer = self.rank == 0
        history = LossHistory(output_dir / "loss.csv", self.step, output_dir / "val.csv")
        bar = ProgressBar(steps, sys.stdout) if sys.stdout.isatty() and writer else None
        self.schedule.completed.set_data(Tensor(self.step, ms.int32))
        losses = DeviceLosses()
        compiled, latest = set(), None
        first_step, unusable, per_call = self.step, feed.unusable, feed.steps_per_call
        window_start, window_steps = time.perf_counter(), 0  # the steps timed since the last log
        try:
            while self.step < steps:
                task = self.task_at(self.step)
                new_graph = task not in compiled
                if new_graph:
                    latest = self._read_losses(losses, history) or latest
                    tic = time.perf_counter()
                values = feed.run(self.train_step(task))
                if values is None:
                    break
                self.step += per_call
                losses.add(self.step, task, values)
                log_now = self.step % log_every == 0 or self.step == steps
                validate_now = writer and validate and val_every and (self.step % val_every == 0
                                                                      or self.step == steps)
                save_now = writer and save_every and self.step % save_every == 0
                if new_graph or log_now or validate_now or save_now:
                    latest = self._read_losses(losses, history) or latest
                    self._check_step_count(per_call)
                if new_graph:
                    compiled.add(task)
                    window_start, window_steps = time.perf_counter(), 0
                    self._log(bar, "step %d/%d task %s: graph compiled and run in %.1f s%s", self.step, steps, task,
                              window_start - tic, f" ({per_call} steps)" if per_call > 1 else "")
                else:
                    window_steps += per_call
                if bar:
                    bar.update(self.step, f"{latest[1]} L1 {latest[3]:.3f}" if latest else "")
                if log_now:
                    now = time.perf_counter()
                    per_step = (now - window_start) / window_steps if window_steps else float("nan")
                    _, task, _, l1, con = latest
                    self._log(bar, "step %d/%d task %s L1 %.4f contrastive %.4f lr %.3g %s samples/s ETA %s%s",
                              self.step, steps, task, l1, con, learning_rate(self.optim_cfg, self.step - 1),
                              f"{samples_per_step / per_step:.1f}" if window_steps else "?",
                              format_eta((steps - self.step) * per_step),
                              f" ({unusable.count} unusable file(s) skipped)" if unusable and unusable.count else "")
                    window_start, window_steps = time.perf_counter(), 0
                if validate_now:
                    self._validate(validate, history, bar)
                if save_now:
                    self._save(output_dir / f"ipt_{self.name}_step{self.step}.ckpt", extra, history, bar)
            self._read_losses(losses, history)
        finally:
            feed.close()
        if bar:
            bar.clear()
        if self.step < steps:
            raise RuntimeError(f"the data stream ended at step {self.step} of {steps}")
        if writer:
            self._save(output_dir / f"ipt_{self.name}_last.ckpt", extra, history, None)
        log.info("trained steps %d..%d%s", first_step, steps,
                 f"; {unusable.count} unusable image file(s) skipped" if unusable and unusable.count else "")
        # data-parallel replicas must end equal; their inputs must differ
        log.info("rank %d of %d: parameters sha1 %s, %s", self.rank, self.world_size, parameters_digest(self.ipt),
                 feed.inputs())

    def _read_losses(self, losses, history):
        """Read the losses kept on the device into ``history`` (with each step's scheduled rate); the last row
        (step, task, total, L1, contrastive), None if there was none. A loss that is not finite is an IPTError
        without loss scaling (training diverged), a warning with it (that step's update was skipped)."""
        rows = losses.read()
        for step, task, total, l1, con in rows:
            if not math.isfinite(total):
                if not self.loss_scaling:
                    raise IPTError(f"the loss is {total} at step {step} ({task}; read at step {self.step}): "
                                   f"training diverged; lower optim.lr or set optim.clip_grad_norm")
                log.warning("step %d: loss %s, update skipped and loss scale lowered", step, total)
            history.add(step, task, total, l1, con, learning_rate(self.optim_cfg, step - 1))
        return rows[-1] if rows else None

    def _check_step_count(self, per_call):
        """The step graph counts the steps it ran (the schedule's count); a feed whose calls train another number of
        steps than they say (``per_call``) is an IPTError, raised before anything is saved."""
        counted = int(self.schedule.completed.asnumpy())
        if counted != self.step:
            raise IPTError(f"the step graph has run {counted} steps where the training loop counts {self.step} "
                           f"({per_call} per call): the calls do not train the steps they should"
                           f"{'; set sink_size 0 (dataset sink mode off)' if per_call > 1 else ''}")

    def _validate(self, validate, history, bar):
        results = validate(self.step)
        for task, (psnr, base) in results.items():
            history.add_val(self.step, task, psnr, base)
        self._log(bar, "validation at step %d: %s", self.step,
                  ", ".join(f"{t} PSNR-Y {p:.2f} dB (input {b:.2f})" for t, (p, b) in results.items()))

    def _save(self, path, extra, history, bar):
        history.write(self.name)  # first: a checkpoint of step N implies metrics up to N (a resume keeps rows <= N)
        self.save(path, extra)
        self._log(bar, "saved %s", path)

    @staticmethod
    def _log(bar, *args):
        if bar:
            bar.clear()
        log.info(*args)


class DeviceLosses:
    """The (total, L1, contrastive) outputs of the steps since the last read, left on the device until ``read``."""

    def __init__(self):
        self.pending = []

    def add(self, step, task, values):
        self.pending.append((step, task, values))

    def read(self):
        """[(step, task, total, L1, contrastive)] of the pending steps, in order; waits for the device once."""
        if not self.pending:
            return []
        values = ops.stack([v for _, _, v in self.pending]).asnumpy().astype(np.float64)
        rows = [(step, task, *map(float, v)) for (step, task, _), v in zip(self.pending, values)]
        self.pending = []
        return rows


def parameters_digest(net):
    """SHA-1 of ``net``'s parameter values (float32 bytes, in name order)."""
    digest = hashlib.sha1()
    for p in sorted(net.get_parameters(), key=lambda q: q.name):
        digest.update(p.name.encode())
        digest.update(np.ascontiguousarray(p.asnumpy(), np.float32).tobytes())
    return digest.hexdigest()


def format_eta(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


class LossHistory:
    """Per-step (step, task, loss, l1, contrastive, lr) rows kept in ``csv_path`` with curves beside it
    (``loss.png``), and validation (step, task, psnr_y, input_psnr_y) rows in ``val_path`` (``val.png``). Rows of
    an earlier run in the same files are kept up to ``start`` (the step a resumed run starts from)."""

    COLUMNS = ("step", "task", "loss", "l1", "contrastive", "lr")
    VAL_COLUMNS = ("step", "task", "psnr_y", "input_psnr_y")

    def __init__(self, csv_path, start=0, val_path=None):
        self.csv_path = Path(csv_path)
        self.val_path = Path(val_path) if val_path else self.csv_path.with_name("val.csv")
        self.rows = self._read(self.csv_path, start)
        self.val_rows = self._read(self.val_path, start)

    @staticmethod
    def _read(path, start):
        if not start or not path.is_file():
            return []
        with open(path, newline="", encoding="utf-8") as f:
            return [tuple(v if k == "task" else (int(v) if k == "step" else float(v)) for k, v in r.items())
                    for r in csv.DictReader(f) if int(r["step"]) <= start]

    def add(self, step, task, loss, l1, contrastive, lr):
        self.rows.append((step, task, loss, l1, contrastive, lr))

    def add_val(self, step, task, psnr, input_psnr):
        self.val_rows.append((step, task, psnr, input_psnr))

    @staticmethod
    def _write_csv(path, columns, rows):
        with atomic_write(path, "w") as f:
            f.write(",".join(columns) + "\n")
            f.writelines(",".join(v if isinstance(v, str) else f"{v:.6g}" for v in r) + "\n" for r in rows)

    def write(self, title):
        self._write_csv(self.csv_path, self.COLUMNS, self.rows)
        if self.val_rows:
            self._write_csv(self.val_path, self.VAL_COLUMNS, self.val_rows)
        tasks = sorted({r[1] for r in self.rows})
        if len(tasks) == 1 and not any(r[4] for r in self.rows):
            panels = [self._panel([(r[0], r[2]) for r in self.rows], f"L1 loss, {title}", 400, 720)]
        else:
            panels = [self._panel([(r[0], r[3]) for r in self.rows if r[1] == t], f"L1, {t}") for t in tasks]
            if any(r[4] for r in self.rows):
                panels.append(self._panel([(r[0], r[4]) for r in self.rows], "contrastive loss"))
        panels = [p for p in panels if p is not None]
        if panels:
            write_png(self.csv_path.with_suffix(".png"), grid(panels))
        val = [self._panel([(r[0], r[2]) for r in self.val_rows if r[1] == t], f"validation PSNR-Y (dB), {t}")
               for t in sorted({r[1] for r in self.val_rows})]
        val = [p for p in val if p is not None]
        if val:
            write_png(self.val_path.with_suffix(".png"), grid(val))

    @staticmethod
    def _panel(points, title, height=260, width=480):
        points = [(s, v) for s, v in points if math.isfinite(v)]
        if not points:
            return None
        steps, values = zip(*points)
        return plot_curve(steps, values, title, height, width)


def grid(panels, columns=2):
    """Equal-sized RGB panels tiled ``columns`` wide (white where the last row is short); one panel as itself."""
    if len(panels) == 1:
        return panels[0]
    h, w, _ = panels[0].shape
    rows = -(-len(panels) // columns)
    out = np.full((rows * h, columns * w, 3), 255, np.uint8)
    for k, panel in enumerate(panels):
        out[k // columns * h:(k // columns + 1) * h, k % columns * w:(k % columns + 1) * w] = panel
    return out


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
    if len(values) == 1:
        cv2.circle(img, tuple(int(v) for v in xy(steps, values)[0]), 4, (20, 60, 160), -1, cv2.LINE_AA)
    k = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(k) / k, mode="valid")
    cv2.polylines(img, [xy(steps[k - 1:], smooth)], False, (20, 60, 160), 2, cv2.LINE_AA)
    cv2.putText(img, title, (left, 24), font, 0.55, ink, 1, cv2.LINE_AA)
    cv2.putText(img, "step", (width // 2 - 14, height - 8), font, 0.45, ink, 1, cv2.LINE_AA)
    return img
