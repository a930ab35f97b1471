"""How the training loop's batches reach the device: one host batch per step, or MindSpore's dataset sink.

``Trainer.fit`` calls ``feed.run(step)`` with the task's step graph (``training.CountedStep``) until it has trained
its steps. Each call trains ``feed.steps_per_call`` steps and returns the last one's (total, L1, contrastive), left
on the device; ``unusable`` is the count of skipped image files (None where the host does not see the batches),
``inputs()`` says what the host knows of the inputs, and ``close()`` ends the feed.
"""
import hashlib

import mindspore as ms
from mindspore import Tensor


class HostBatches:
    """One step per (lr, hr, skipped, digest) NumPy batch of ``batches`` (``train_dataset.batches``), handed to the
    step as Tensors. The stream's skipped image files go to ``unusable`` (an UnusableFiles: counted and logged), and
    the batches' digests into one SHA-1, so that data-parallel ranks can show that their inputs differ."""

    steps_per_call = 1

    def __init__(self, batches, unusable=None):
        self.batches, self.unusable = iter(batches), unusable
        self.digest = hashlib.sha1()

    def run(self, step):
        """``step`` on the next batch; None when the stream has ended."""
        batch = next(self.batches, None)
        if batch is None:
            return None
        lr, hr, skipped, digest = batch
        values = step(Tensor(lr), Tensor(hr))
        self.digest.update(digest.tobytes())
        if self.unusable is not None:
            self.unusable.add(skipped)
        return values

    def inputs(self):
        return f"inputs sha1 {self.digest.hexdigest()}"

    def close(self):
        pass


class DatasetSink:
    """Dataset sink mode (Ascend and GPU only): ``mindspore.data_sink`` sends the (lr, hr) batches of ``dataset``
    (``train_dataset.sink_dataset``) to a device queue, and each call of ``run`` trains ``sink_size`` steps: the
    device's GetNext, then the step graph, the same compiled graph as the per-step path's. A call returns the losses
    of its last step only. The host never sees the batches: skipped image files are not counted and there is no
    inputs digest. MindSpore sends the dataset round and round; ``close`` stops it.

    Without a ``jit_config`` (MindSpore 2.10, ``mindspore/train/data_sink.py``), ``data_sink`` sizes the device
    queue's loop at 1 and calls the wrapper ``sink_size`` times from Python, so a call is exactly ``sink_size`` steps.
    With one, it sets MindSpore's global iteration count (``ConfigManager::iter_num``) to ``sink_size``, which the
    kernel-by-kernel runtime (jit levels O0, O1) takes as the loop count of every graph built afterwards
    (``GetLoopCount`` in ``runtime/graph_scheduler/graph_scheduler.cc``) while ``data_sink`` still calls ``sink_size``
    times, and on the Atlas training series (910A) or with GE it calls once; the steps per call would then depend on
    the device and the validation graph would loop too (read in MindSpore's source, not run). ``Trainer.fit``
    compares the steps the graph counted with its own count at every log, so a call that trains another number of
    steps stops the run before anything is saved."""

    unusable = None

    def __init__(self, dataset, sink_size):
        self.dataset, self.steps_per_call = dataset, sink_size
        self.sink, self.step = None, None

    def run(self, step):
        """``sink_size`` steps of ``step``, which must be the same graph at every call (one task)."""
        if self.sink is None:
            def sunk_step(lr, hr):
                return step(lr, hr)

            self.sink = ms.data_sink(sunk_step, self.dataset, self.steps_per_call)
            self.step = step
        if step is not self.step:
            raise RuntimeError("dataset sink mode trains one step graph; it was given a second one")
        return self.sink()

    def inputs(self):
        return "inputs not seen by the host (dataset sink)"

    def close(self):
        """Stop sending batches to the device."""
        transfer = getattr(self.dataset, "__transfer_dataset__", None)
        if transfer is not None:
            transfer.stop_send()
            transfer.release()
