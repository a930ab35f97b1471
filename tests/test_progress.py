"""The one terminal progress bar (training steps; eval.py's tiles per image draws it through ``prefix``/``total``)."""
import io

from src.progress import ProgressBar


def test_bar_redraws_in_place_with_prefix_and_total():
    out = io.StringIO()
    bar = ProgressBar(10, out, width=10)
    bar.update(3, "loss 1.5")
    assert out.getvalue() == "\r[###.......] 3/10 loss 1.5\033[K"
    bar.update(12, "tiles", prefix="[1/2] photo ", total=24)  # another total for this line
    assert out.getvalue().endswith("\r[1/2] photo [#####.....] 12/24 tiles\033[K")
    bar.update(30, "")  # past the end: the bar is full, the count says where it is
    assert out.getvalue().endswith("\r[##########] 30/10 \033[K")
    bar.clear()
    assert out.getvalue().endswith("\r\033[K")


def test_tiles_are_logged_at_intervals_when_no_terminal_shows_a_bar(caplog):
    """eval.py's progress in a log file or batch job: a line per interval within an image, then the image's line."""
    from eval import TileProgress
    caplog.set_level("INFO")
    progress = TileProgress(2, stream=io.StringIO(), log_every=0.0)  # not a terminal: no bar, every update is due
    update = progress.image(1, "photo.jpg")
    for done in (8, 16, 24):
        update(done, 24)
    progress.done("photo.jpg -> out/photo.png")
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(",")[0] for line in lines[:2]] == ["[1/2] photo.jpg: 8/24 tiles", "[1/2] photo.jpg: 16/24 tiles"]
    assert "min left" in lines[0] and len(lines) == 3  # the last batch gives the image's own line, not an interval's
    assert lines[2].startswith("[1/2] photo.jpg -> out/photo.png (24 tiles,")

    caplog.clear()
    quiet = TileProgress(1, stream=io.StringIO())  # the default interval, a minute: a short image logs once
    update = quiet.image(1, "small.png")
    update(8, 16)
    update(16, 16)
    quiet.done("small.png -> out/small.png")
    assert len(caplog.records) == 1
