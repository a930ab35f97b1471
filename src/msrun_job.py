"""Running an msrun job that ends within seconds of its first failing worker, with that worker's error last.

msrun (``--join=True``) notices a worker that exits with an error and kills the other workers of its machine, but
then waits for its scheduler, which waits for the cluster time-out (600 s by default) when the cluster never formed,
and ends with a traceback of its own. ``scripts/run_distribute_train.sh`` runs msrun through
``python -m src.msrun_job LOG_DIR -- msrun ...`` instead, which:

- passes msrun's output through (without msrun's closing traceback) and keeps all of it in
  ``LOG_DIR/msrun_node<IPT_NODE_RANK>.log``;
- finds this machine's workers by the job mark it exports (``IPT_MSRUN_JOB``) in their environment, with their rank
  (``MS_NODE_ID``);
- as soon as msrun reports a failed worker (``Worker process PID exit with exception. Error code: N``), ends the job
  on this machine (msrun and its scheduler, every worker) and prints, as its last line, which rank failed, how, its
  log and its own one-line error (``error: ...``, train.py's report), exiting with that worker's status (2 for a
  user error, else 1);
- when msrun ends on its own with a failure it did not attribute (the scheduler's), names the rank the scheduler
  names. Every worker log's own ``error:`` line is kept; no traceback is added.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

JOB_MARK = "IPT_MSRUN_JOB"
WORKER_FAILED = re.compile(r"Worker process (\d+) exit with exception\. Error code: (-?\d+)")
TRACEBACK_START = "Traceback (most recent call last):"
TRACEBACK_END = re.compile(r"^RuntimeError: Distributed job exited with exception")
SCHEDULER_LOST = re.compile(r"The node: (\d+) is timed out")  # the scheduler stopped hearing from that rank
SCHEDULER_TWICE = re.compile(r"Node (\d+) registered repeatedly\. It's host ip is (\S+?)\.? Reject")
SCHEDULER_GONE = "Retry to reconnect to the meta server"  # a worker lost the scheduler: the job failed elsewhere
POLL_S = 0.2


def job_workers(mark, proc_root="/proc"):
    """{rank: pid} of the live msrun workers whose environment carries ``IPT_MSRUN_JOB=mark``."""
    found = {}
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = dict(item.split("=", 1) for item in (entry / "environ").read_bytes().decode(
                "utf-8", "replace").split("\0") if "=" in item)
        except OSError:
            continue
        try:
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if (env.get(JOB_MARK) == mark and env.get("MS_ROLE") == "MS_WORKER" and env.get("MS_NODE_ID", "").isdigit()
                and command != "tail"):  # msrun's "tail -f" of each worker log carries the worker's environment
            found[int(env["MS_NODE_ID"])] = int(entry.name)
    return found


def error_line(log_path):
    """The last ``error: ...`` line of a worker log (train.py's one-line report), None if there is none."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((ln.strip() for ln in reversed(lines) if ln.startswith("error: ")), None)


def how_it_ended(code):
    code = int(code)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit status {code}"


def failure_line(rank, how, log_path):
    """The job's last line: which rank failed, how, its log and its own error line."""
    own = error_line(log_path)
    text = f"error: worker rank {rank} failed ({how}; log {log_path})"
    return f"{text}: {own[len('error: '):]}" if own else text


class LogWatch:
    """The text added to log files since the last look."""

    def __init__(self):
        self.offsets = {}

    def new_text(self, path):
        try:
            with open(path, "rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
        except OSError:
            return ""
        cut = data.rfind(b"\n") + 1  # whole lines only
        self.offsets[path] = self.offsets.get(path, 0) + cut
        return data[:cut].decode("utf-8", "replace")


class Job:
    """One msrun command on this machine (see the module's docstring)."""

    def __init__(self, command, log_dir, out=sys.stderr):
        self.command, self.log_dir, self.out = command, Path(log_dir), out
        self.mark = uuid.uuid4().hex
        self.failed = None  # (pid, code) of the first worker msrun reported
        self.workers = {}  # rank -> pid, as found
        self.lock = threading.Lock()

    def _pass_output(self, stream, log):
        skipping = False
        for line in iter(stream.readline, ""):
            log.write(line)
            log.flush()
            found = WORKER_FAILED.search(line)
            if found:
                with self.lock:
                    self.failed = self.failed or (int(found.group(1)), int(found.group(2)))
            if line.startswith(TRACEBACK_START):
                skipping = True
            if not skipping:
                self.out.write(line)
                self.out.flush()
            if skipping and TRACEBACK_END.match(line):
                skipping = False

    def _end(self, proc):
        """Stop msrun, its scheduler and its tails (its process group), then every worker found."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
        for pid in self.workers.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _rank_of(self, pid):
        return next((r for r, p in self.workers.items() if p == pid), None)

    def _log_of(self, rank):
        return self.log_dir / f"worker_{rank}.log"

    def _logged_ranks(self):
        return sorted(int(m.group(1)) for p in self.log_dir.glob("worker_*.log")
                      if (m := re.fullmatch(r"worker_(\d+)\.log", p.name)))

    def _watch_logs(self, watch):
        """A failure seen in the logs of this machine: (rank or None, what) or None. The scheduler (machine 0)
        names a rank it stopped hearing from; a worker that lost the scheduler means the job failed elsewhere."""
        scheduler_log = self.log_dir / "scheduler.log"
        text = watch.new_text(scheduler_log)
        lost = SCHEDULER_LOST.search(text)
        if lost:
            return int(lost.group(1)), "the scheduler stopped hearing from it"
        twice = SCHEDULER_TWICE.search(text)
        if twice:
            return None, (f"rank {twice.group(1)} was started twice: two machines run with the same IPT_NODE_RANK "
                          f"(the second one from {twice.group(2)}); every machine needs its own")
        # the scheduler runs train.py too: its errors before init() are the workers' own (msrun reports those),
        # its init() reports a cluster that did not form
        failed = re.search(r"^error: (data-parallel start .+)$", text, re.M)
        if failed:
            return None, f"the scheduler failed (log {scheduler_log}): {failed.group(1)}"
        for rank in self.workers:
            if SCHEDULER_GONE in watch.new_text(self._log_of(rank)):
                return None, (f"rank {rank} of this machine lost the scheduler at "
                              f"{os.environ.get('IPT_MASTER_ADDR', '?')}:{os.environ.get('IPT_MASTER_PORT', '?')}: "
                              f"the job failed on another machine; see the logs there")
        return None

    def run(self):
        env = {**os.environ, JOB_MARK: self.mark}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"msrun_node{os.environ.get('IPT_NODE_RANK', '0')}.log"
        watch, seen = LogWatch(), None
        with open(log_path, "a", encoding="utf-8") as log:
            proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env=env, start_new_session=True, bufsize=1)
            reader = threading.Thread(target=self._pass_output, args=(proc.stdout, log), daemon=True)
            reader.start()
            try:
                while proc.poll() is None and self.failed is None and seen is None:
                    found = job_workers(self.mark)
                    if set(found.items()) - set(self.workers.items()):
                        self.workers.update(found)
                        log.write(f"msrun_job: this machine's workers (rank: pid): {self.workers}\n")
                    seen = self._watch_logs(watch)
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                self._end(proc)
                reader.join(timeout=5)
                self.out.write("error: interrupted; the job was ended\n")
                return 130
            if self.failed is not None or seen is not None:
                self._end(proc)
            reader.join(timeout=5)
        if self.failed is None and seen is None and proc.returncode == 0:
            return 0
        if self.failed is not None:
            pid, code = self.failed
            rank = self._rank_of(pid)
            if rank is None:  # it ended before it was seen: the one rank not seen, or the one with an error line
                unseen = [r for r in self._logged_ranks() if r not in self.workers]
                rank = unseen[0] if len(unseen) == 1 else next(
                    (r for r in self._logged_ranks() if error_line(self._log_of(r))), None)
            line = failure_line(rank, how_it_ended(code), self._log_of(rank)) if rank is not None else None
        elif seen is not None:
            rank, what = seen
            code = None
            if rank is None:
                line = f"error: {what}"
            elif self._log_of(rank).is_file():  # a rank of this machine
                line = failure_line(rank, what, self._log_of(rank))
            else:
                line = f"error: worker rank {rank} failed ({what}; see worker_{rank}.log on its machine)"
        else:
            code, line = None, None
        if line is None:
            line = f"error: the msrun job failed (exit status {proc.returncode}); see the logs in {self.log_dir}"
        self.out.write(line + "\n")
        self.out.flush()
        return 2 if code == 2 else 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m src.msrun_job LOG_DIR -- msrun [msrun arguments...]", file=sys.stderr)
        return 1
    return Job(argv[2:], argv[0]).run()


if __name__ == "__main__":
    sys.exit(main())
