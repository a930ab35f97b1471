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
    (``train_dataset.sink_dataset``) to the device, and each call of ``run`` trains ``sink_size`` steps of one step
    graph, the batch read on the device (GetNext) in the same compiled function (``mindspore.JitConfig()``). A call
    returns the losses of its last step only. The host never sees the batches: skipped image files are not counted
    and there is no inputs digest. MindSpore sends the dataset round and round; ``close`` stops it."""

    unusable = None

    def __init__(self, dataset, sink_size):
        self.dataset, self.steps_per_call = dataset, sink_size
        self.sink, self.step = None, None

    def run(self, step):
        """``sink_size`` steps of ``step``, which must be the same graph at every call (one task)."""
        if self.sink is None:
            def sunk_step(lr, hr):
                return step(lr, hr)

            self.sink = ms.data_sink(sunk_step, self.dataset, self.steps_per_call, ms.JitConfig())
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
