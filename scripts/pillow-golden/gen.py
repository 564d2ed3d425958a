"""Generate the golden fixtures of internal/imageproc from Pillow.

Run through regen.sh (uses Debian's python3-pil 9.4 and python3-numpy).
Writes internal/imageproc/testdata/: inputs/ (small image files made here),
stages/ (PNG of small uint8 stages) and golden.json (per case: options,
stage sizes and SHA-256 of the exact bytes of every stage and of the final
float32 pixel_values).

Large cases use a synthetic image computed from a formula (synth below) that
the Go test reproduces, so no large input is committed.
"""

import hashlib
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

import reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "internal", "imageproc", "testdata")
PNG_MAX_PIXELS = 16384  # stages up to this size are also stored as PNG


def synth(w, h, seed):
    """Deterministic photo-like RGB: gradients, hashed noise, a disc.
    Mirrored by synthRGB in golden_test.go (uint32 wrapping arithmetic)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.uint32)
    s = np.uint32((seed * 83492791) & 0xFFFFFFFF)
    n = (x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ s
    n = (n * np.uint32(2654435761)) >> np.uint32(24)  # 0..255
    r = (x * np.uint32(255)) // np.uint32(max(w - 1, 1))
    g = (y * np.uint32(255)) // np.uint32(max(h - 1, 1))
    b = (r + g + (n >> np.uint32(2))) & np.uint32(255)
    r = (r + (n & np.uint32(31))) & np.uint32(255)
    cx, cy, rad = w // 3, h // 2, min(w, h) // 4
    dx = x.astype(np.int64) - cx
    dy = y.astype(np.int64) - cy
    disc = dx * dx + dy * dy <= rad * rad
    g = np.where(disc, np.uint32(255) - g, g)
    return np.stack([r, g, b], -1).astype(np.uint8)


def photo(w, h, seed):
    """Smooth photo-like content with mild noise (for lossy inputs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([
        128 + 100 * np.sin(x / (w / 3.1) + seed),
        128 + 100 * np.cos(y / (h / 2.3)),
        (x + y) * 255.0 / (w + h),
    ], -1) + rng.normal(0, 10, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def png_raw(path, w, h, color_type, depth, rows):
    """Minimal PNG writer for formats Pillow cannot save (16-bit RGB/GA)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def gif_raw(path, screen, rect, indices, palette, transparent=None):
    """Minimal GIF writer (uncompressed LZW) for a first frame smaller than
    the logical screen, which Pillow cannot save."""
    sw, sh = screen
    x0, y0, w, h = rect
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0xF7, 0, 0)
    out += bytes(palette) + bytes(768 - len(palette))
    if transparent is not None:
        out += b"\x21\xf9\x04\x01\x00\x00" + bytes([transparent]) + b"\x00"
    out += b"\x2c" + struct.pack("<HHHHB", x0, y0, w, h, 0) + b"\x08"
    codes = []
    for i, v in enumerate(indices):
        if i % 200 == 0:
            codes.append(256)  # clear: keeps every code 9 bits wide
        codes.append(int(v))
    codes.append(257)
    acc = nbits = 0
    data = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += 9
        while nbits >= 8:
            data.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        data.append(acc)
    for i in range(0, len(data), 255):
        blk = data[i:i + 255]
        out += bytes([len(blk)]) + bytes(blk)
    out += b"\x00\x3b"
    with open(path, "wb") as f:
        f.write(out)


def exif_orientation(o):
    """A little-endian TIFF block with IFD0 = {Orientation: o}."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, o, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def make_inputs(d):
    """Writes the input files; returns {name: filename}."""
    os.makedirs(d, exist_ok=True)
    files = {}

    def save(name, im, **kw):
        p = os.path.join(d, name)
        im.save(p, **kw)
        files[name] = name

    ph = Image.fromarray(photo(64, 48, 1))
    save("photo420.jpg", ph, quality=90)
    save("photo444.jpg", ph, quality=90, subsampling=0)
    save("photo422.jpg", ph, quality=85, subsampling=1)
    save("progressive.jpg", ph, quality=80, progressive=True)
    save("grey.jpg", ph.convert("L"), quality=90)
    save("cmyk.jpg", ph.convert("CMYK"), quality=90)
    small = Image.fromarray(photo(40, 24, 2))
    for o in range(1, 9):
        save("exif%d.jpg" % o, small, quality=92, exif=exif_orientation(o))
    save("exif6.png", small, exif=exif_orientation(6))

    a = synth(48, 40, 3)
    alpha = np.tile(np.linspace(0, 255, 48).astype(np.uint8), (40, 1))
    save("rgba.png", Image.fromarray(np.dstack([a, alpha]), "RGBA"))
    save("rgb.png", Image.fromarray(a))
    save("grey.png", Image.fromarray(a[..., 1]))
    save("greyalpha.png", Image.fromarray(np.dstack([a[..., 0], alpha]), "LA"))
    pal = Image.fromarray(a).quantize(colors=37)
    save("palette.png", pal, transparency=5)
    save("palette4bit.png", Image.fromarray(a).quantize(colors=12), bits=4)
    save("bilevel.png", Image.fromarray(a[..., 0]).convert("1"))
    save("palette.gif", pal, transparency=5)
    gpal = [10, 20, 30, 200, 100, 50, 0, 255, 0, 1, 2, 3, 90, 80, 70]
    idx = [(1 + i % 4) for i in range(13 * 9)]
    gif_raw(os.path.join(d, "gif_partial.gif"), (24, 16), (5, 3, 13, 9), idx, gpal)
    files["gif_partial.gif"] = "gif_partial.gif"
    gif_raw(os.path.join(d, "gif_partial_transparent.gif"), (24, 16), (5, 3, 13, 9), idx, gpal, transparent=3)
    files["gif_partial_transparent.gif"] = "gif_partial_transparent.gif"
    save("lossless.webp", Image.fromarray(np.dstack([a, alpha]), "RGBA"), lossless=True)
    save("lossy.webp", ph, quality=80)

    # 16-bit PNGs, written by hand (big-endian samples).
    y, x = np.mgrid[0:24, 0:32].astype(np.uint32)
    v16 = ((x * 2047 + y * 977) % 65536).astype(">u2")
    rgb16 = np.dstack([v16, (65535 - v16).astype(">u2"), ((v16 * 3) % 65536).astype(">u2")])
    png_raw(os.path.join(d, "rgb16.png"), 32, 24, 2, 16, [r.tobytes() for r in rgb16])
    files["rgb16.png"] = "rgb16.png"
    grey16 = (x * 11 + y * 5).astype(">u2")  # mostly < 256: Pillow clips, not scales
    grey16[0, :8] = [0, 1, 254, 255, 256, 1000, 40000, 65535]
    png_raw(os.path.join(d, "grey16.png"), 32, 24, 0, 16, [r.tobytes() for r in grey16])
    files["grey16.png"] = "grey16.png"
    ga16 = np.dstack([v16, (x * 2000).astype(">u2")])
    png_raw(os.path.join(d, "greyalpha16.png"), 32, 24, 4, 16, [r.tobytes() for r in ga16])
    files["greyalpha16.png"] = "greyalpha16.png"
    rgba16 = np.dstack([rgb16, (y * 2500).astype(">u2")])
    png_raw(os.path.join(d, "rgba16.png"), 32, 24, 6, 16, [r.tobytes() for r in rgba16])
    files["rgba16.png"] = "rgba16.png"

    save("one.png", Image.fromarray(np.array([[[200, 10, 77]]], np.uint8)))
    wide = synth(5000, 20, 4)
    save("wide5000x20.png", Image.fromarray(wide))
    for i, (w, h) in enumerate([(31, 37), (39, 30), (35, 35), (30, 39)]):
        save("s74_%dx%d.png" % (w, h), Image.fromarray(synth(w, h, 10 + i)))
    return files


def sha(b):
    return hashlib.sha256(b).hexdigest()


def stage_entry(name, label, im):
    arr = np.asarray(im.convert("RGB"))
    e = {"w": im.size[0], "h": im.size[1], "sha256": sha(arr.tobytes())}
    if im.size[0] * im.size[1] <= PNG_MAX_PIXELS:
        fn = "%s.%s.png" % (name, label)
        im.save(os.path.join(OUT, "stages", fn))
        e["png"] = "stages/" + fn
    return e


def run_case(name, im, L, M, split=True, source=None):
    st = ref.stages(im, L, M, split)
    px = ref.normalize(st["frames"])
    case = {
        "name": name,
        "L": L,
        "M": M,
        "split": split,
        "decoded": stage_entry(name, "decoded", im),
        "resized1": stage_entry(name, "resized1", st["resized1"]),
        "rows": st["rows"],
        "cols": st["cols"],
        "frames": [stage_entry(name, "frame%d" % i, f) for i, f in enumerate(st["frames"])],
        "shape": [1] + list(px.shape),
        "pixels_sha256": sha(px.astype("<f4").tobytes()),
    }
    if st["resized2"] is not None:
        case["resized2"] = stage_entry(name, "resized2", st["resized2"])
    if px.size <= 3 * PNG_MAX_PIXELS:
        case["pixels_sample"] = [float(v) for v in px.reshape(-1)[:: max(1, px.size // 64)][:64]]
    case.update(source)
    return case


def main():
    os.makedirs(os.path.join(OUT, "stages"), exist_ok=True)
    for f in os.listdir(os.path.join(OUT, "stages")):
        os.remove(os.path.join(OUT, "stages", f))
    inputs = os.path.join(OUT, "inputs")
    files = make_inputs(inputs)
    cases = []
    # Decoder coverage: every file, L=40 M=20 (§7.4 sizes).
    for fn in sorted(files):
        im = ref.load_image(os.path.join(inputs, fn))
        L, M = (40, 20)
        if fn.startswith("wide"):
            L, M = 80, 20
        cases.append(run_case(fn, im, L, M, True, {"input": "inputs/" + fn}))
    # No split, and the 384-px family scaled down (L:M = 4:1 like 1536:384).
    for fn, L, M, sp in [("rgb.png", 40, 20, False), ("photo420.jpg", 64, 16, False),
                         ("rgb.png", 48, 12, True), ("s74_31x37.png", 48, 12, True),
                         ("wide5000x20.png", 48, 12, True), ("one.png", 48, 12, True)]:
        im = ref.load_image(os.path.join(inputs, fn))
        cases.append(run_case("%s.L%d.M%d.%s" % (fn, L, M, "split" if sp else "nosplit"), im, L, M, sp,
                              {"input": "inputs/" + fn}))
    # Grid table of the spec (§2.3), synthetic inputs at real sizes.
    grid = [(224, 224), (512, 512), (640, 480), (480, 640), (1280, 640), (1600, 1067),
            (1920, 1080), (100, 80), (100, 150), (3000, 100)]
    for i, (w, h) in enumerate(grid):
        im = Image.fromarray(synth(w, h, 100 + i))
        cases.append(run_case("grid2048_%dx%d" % (w, h), im, 2048, 512, True,
                              {"synth": {"w": w, "h": h, "seed": 100 + i}, "big": True}))
    for i, (w, h) in enumerate([(224, 224), (640, 480), (1280, 640), (1600, 1067)]):
        im = Image.fromarray(synth(w, h, 200 + i))
        cases.append(run_case("grid1536_%dx%d" % (w, h), im, 1536, 384, True,
                              {"synth": {"w": w, "h": h, "seed": 200 + i}, "big": True}))
    im = Image.fromarray(synth(1600, 1067, 300))
    cases.append(run_case("nosplit2048_1600x1067", im, 2048, 512, False,
                          {"synth": {"w": 1600, "h": 1067, "seed": 300}, "big": True}))
    # A small synthetic case so the Go port of synth() is checked in -short too.
    im = Image.fromarray(synth(37, 23, 7))
    cases.append(run_case("synth_37x23", im, 40, 20, True, {"synth": {"w": 37, "h": 23, "seed": 7}}))
    # numpy's own .npy writer, for Batch.WriteNPY: values (i - 20) / 7.
    np.save(os.path.join(OUT, "pixels_1x2x3x2x2.npy"),
            ((np.arange(24, dtype=np.float32) - 20) / np.float32(7)).reshape(1, 2, 3, 2, 2))
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"generator": "scripts/pillow-golden/gen.py",
                   "pillow": Image.__version__, "numpy": np.__version__, "cases": cases}, f, indent=1)
    print("wrote %d cases to %s" % (len(cases), os.path.normpath(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
