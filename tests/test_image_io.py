"""Image reading/writing on real photos written to disk (truncated JPEGs, the streamed output image), and
atomic_write / atomic_path."""
import logging

import cv2
import numpy as np
import pytest
from skimage import data

from src.data.image_io import (IMAGE_EXTENSIONS, OutputImage, list_images, read_rgb, save_npy, to_float, to_uint8,
                               to_uint16, write_png)
from src.errors import ImageError
from src.fileio import atomic_path, atomic_write


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def _imwrite(path, img):
    assert cv2.imwrite(str(path), img)
    return path


def test_png_rgb_exact(tmp_path, astronaut, caplog):
    path = _imwrite(tmp_path / "astronaut.png", cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    with caplog.at_level(logging.WARNING, logger="ipt"):
        img = read_rgb(path)
    assert img.dtype == np.uint8 and img.flags.c_contiguous
    np.testing.assert_array_equal(img, astronaut)
    assert caplog.records == []


def test_jpeg_is_rgb(tmp_path):
    cat = data.chelsea()
    img = read_rgb(_imwrite(tmp_path / "chelsea.jpg", cv2.cvtColor(cat, cv2.COLOR_RGB2BGR)))
    assert img.shape == cat.shape
    assert np.abs(img.astype(int) - cat).mean() < 3       # lossy, but channels not swapped


def test_non_ascii_path(tmp_path):
    coffee = data.coffee()
    path = tmp_path / "café ☕" / "图像.png"
    write_png(path, coffee)
    np.testing.assert_array_equal(read_rgb(path), coffee)


def test_grayscale_png_warns(tmp_path, caplog):
    camera = data.camera()
    path = _imwrite(tmp_path / "camera.png", camera)
    with caplog.at_level(logging.WARNING, logger="ipt"):
        img = read_rgb(path)
    assert img.shape == camera.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], camera)
    assert [r.getMessage() for r in caplog.records] == [f"{path}: grayscale image converted to RGB"]


def test_rgba_png_drops_alpha(tmp_path, astronaut, caplog):
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGRA)
    bgra[..., 3] = 128
    path = _imwrite(tmp_path / "rgba.png", bgra)
    with caplog.at_level(logging.WARNING, logger="ipt"):
        img = read_rgb(path)
    np.testing.assert_array_equal(img, astronaut)
    assert [r.getMessage() for r in caplog.records] == [f"{path}: alpha channel dropped"]


def test_16bit_png_refused_unless_allowed(tmp_path):
    path = _imwrite(tmp_path / "deep.png", data.camera().astype(np.uint16) * 257)
    with pytest.raises(ImageError) as info:
        read_rgb(path)
    assert str(info.value).startswith(f"{path}: 16-bit image; only restoration (eval.py --input) takes 16-bit")


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_16bit_read_at_full_precision_and_written_back(tmp_path, astronaut, ext):
    deep = astronaut.astype(np.uint16) * 257 + np.arange(astronaut.size, dtype=np.uint16).reshape(astronaut.shape) % 200
    path = _imwrite(tmp_path / f"deep{ext}", cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    img = read_rgb(path, allow_16bit=True)
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img, deep)
    x = to_float(img)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, deep.astype(np.float32) * np.float32(255 / 65535))
    assert len(np.unique(x[..., 0])) > 256                      # not rounded to 8 bits on the way in
    write_png(tmp_path / "back.png", to_uint16(x))
    back = cv2.imread(str(tmp_path / "back.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back[..., ::-1], deep)        # round trip exact
    np.testing.assert_array_equal(to_float(astronaut), astronaut.astype(np.float32))


def test_float_tiff_rejected(tmp_path):
    path = _imwrite(tmp_path / "float.tiff", np.random.default_rng(0).random((8, 8, 3), dtype=np.float32))
    with pytest.raises(ImageError, match="floating-point images are not supported"):
        read_rgb(path)


@pytest.mark.parametrize("name, content", [
    ("x.png", b"this is not an image\n"),
    ("empty.png", b""),
    ("truncated.png", None),
])
def test_undecodable_files(tmp_path, astronaut, name, content):
    if content is None:
        ok, buf = cv2.imencode(".png", astronaut)
        content = buf.tobytes()[: buf.size // 2]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        read_rgb(path)
    assert str(info.value) == f"{path}: cannot decode image (corrupt or not an image)"


def test_read_missing_or_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file or directory"):
        read_rgb(tmp_path / "missing.png")
    with pytest.raises(ImageError):
        read_rgb(tmp_path)


def test_list_images(tmp_path, astronaut):
    assert ".png" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    for name in ("b.PNG", "a.jpg", "c.webp"):
        _imwrite(tmp_path / name, astronaut)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp"]
    assert list_images(tmp_path / "a.jpg") == [tmp_path / "a.jpg"]


def test_list_images_errors(tmp_path):
    with pytest.raises(ImageError) as info:
        list_images(tmp_path / "nope")
    assert str(info.value) == f"{tmp_path / 'nope'}: no such file or directory"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="no image files"):
        list_images(empty)
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ImageError, match="notes.txt: not an image file"):
        list_images(text)


def test_write_png_round_trip_exact(tmp_path, astronaut):
    path = tmp_path / "out" / "deep" / "a.png"
    write_png(path, astronaut)
    np.testing.assert_array_equal(read_rgb(path), astronaut)
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.png"]     # no temp file left behind


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8),
                                 np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_write_png_rejects_bad_arrays(tmp_path, bad):
    with pytest.raises(ValueError):
        write_png(tmp_path / "bad.png", bad)
    assert list(tmp_path.iterdir()) == []


def test_save_npy(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "a.npy"
    save_npy(path, arr)
    loaded = np.load(path)
    assert loaded.dtype == arr.dtype
    np.testing.assert_array_equal(loaded, arr)


def test_to_uint8_rounds_half_to_even_and_clips():
    x = np.array([-3.0, 0.5, 1.5, 2.5, 2.4999, 254.5, 255.4, 300.0])
    np.testing.assert_array_equal(to_uint8(x), [0, 0, 2, 2, 2, 254, 255, 255])
    assert to_uint8(x).dtype == np.uint8


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("new, partial")
            raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_atomic_write_replaces_and_uses_dot_tmp_name(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        names = [p.name for p in tmp_path.iterdir() if p != target]
        f.write(b"new")
    assert len(names) == 1 and names[0].startswith(".result.bin.tmp")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["result.bin"]


# --- truncated JPEGs (OpenCV decodes them with the missing part gray) --------------------------------------------

def _jpeg(img, *params):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), list(params))
    assert ok
    return buf.tobytes()


def _with_exif_thumbnail(jpeg, thumbnail):
    """``jpeg`` with an APP1 segment holding a whole small JPEG (its own end-of-image marker) after SOI."""
    body = b"Exif\0\0" + thumbnail
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


@pytest.mark.parametrize("kind", ["baseline", "progressive", "restart markers", "exif thumbnail"])
def test_truncated_jpeg_is_an_error(tmp_path, astronaut, kind):
    params = {"baseline": (), "progressive": (cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
              "restart markers": (cv2.IMWRITE_JPEG_RST_INTERVAL, 4), "exif thumbnail": ()}[kind]
    whole = _jpeg(astronaut, *params)
    if kind == "exif thumbnail":
        whole = _with_exif_thumbnail(whole, _jpeg(astronaut[::16, ::16].copy()))
    path = tmp_path / "photo.jpg"
    for tail in (b"", b"\0\0 trailing bytes after the end-of-image marker"):
        path.write_bytes(whole + tail)
        assert read_rgb(path).shape == astronaut.shape
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 2):
        path.write_bytes(whole[:cut])
        if kind != "progressive":   # the decoder alone accepts it, gray below the cut: what the check is for
            assert cv2.imdecode(np.frombuffer(whole[:cut], np.uint8), cv2.IMREAD_COLOR) is not None
        with pytest.raises(ImageError) as info:
            read_rgb(path)
        assert str(info.value) == f"{path}: truncated JPEG (the file ends before its image data does)"


# --- the streamed output image ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_output_image_equals_the_whole_array_writers(tmp_path, dtype):
    rows = np.random.default_rng(0).uniform(-20, 280, (37, 29, 3)).astype(np.float32)
    rows[0, :4, 0] = [0.5, 1.5, 254.5, 255.5]
    with OutputImage(37, 29, dtype, tmp_path / "a.npy") as out:
        for y in range(0, 37, 10):
            out(y, rows[y:y + 10])
        out.write_png(tmp_path / "a.png")
        assert not (tmp_path / "a.npy").exists()            # only once every row came and the block ended
    save_npy(tmp_path / "ref.npy", rows)
    write_png(tmp_path / "ref.png", (to_uint8 if dtype == np.uint8 else to_uint16)(rows))
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "ref.png").read_bytes()
    np.testing.assert_array_equal(out.rgb, read_rgb(tmp_path / "ref.png", allow_16bit=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "a.png", "ref.npy", "ref.png"]


def test_output_image_incomplete_or_out_of_order_writes_nothing(tmp_path):
    rows = np.zeros((10, 5, 3), np.float32)
    with pytest.raises(ValueError, match="only 4 of 10 rows restored"):
        with OutputImage(10, 5, np.uint8, tmp_path / "a.npy") as out:
            out(0, rows[:4])
    with pytest.raises(ValueError, match="rows 6..9 of shape"):
        with OutputImage(10, 5, np.uint8, tmp_path / "a.npy") as out:
            out(6, rows[6:])
    with pytest.raises(ValueError, match="only 0 of 10 rows restored"):
        OutputImage(10, 5).write_png(tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_for_writers_by_name(tmp_path):
    target = tmp_path / "sub" / "out.png"
    with atomic_path(target, ".png") as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".out.png.tmp") and tmp.suffix == ".png"
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["out.png"]
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new" and [p.name for p in target.parent.iterdir()] == ["out.png"]
