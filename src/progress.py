"""A one-line progress bar redrawn in place on a terminal (training steps, tiles of an image)."""


class ProgressBar:
    """``[####....] step/total text`` on ``stream``, redrawn in place; callers draw it only on a terminal."""

    def __init__(self, total, stream, width=30):
        self.total, self.stream, self.width = total, stream, width

    def update(self, step, text="", prefix="", total=None):
        """Redraw at ``step`` of ``total`` (default: the bar's own), ``prefix`` before the bar and ``text`` after."""
        total = total or self.total
        filled = self.width * min(step, total) // total
        self.stream.write(f"\r{prefix}[{'#' * filled}{'.' * (self.width - filled)}] {step}/{total} {text}\033[K")
        self.stream.flush()

    def clear(self):
        self.stream.write("\r\033[K")
        self.stream.flush()
