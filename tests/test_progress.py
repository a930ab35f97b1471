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
