"""Reference SmolVLM image preprocessing on Pillow + numpy.

This is the algorithm of Python transformers' SmolVLMImageProcessor
(src/transformers/models/smolvlm/image_processing_smolvlm.py) applied to the
output of transformers' load_image (ImageOps.exif_transpose, then
convert("RGB")), written out here so the golden data does not depend on
transformers or on the Go code. Every resize is PIL Image.resize(size,
resample) on RGB uint8; rescale and normalise follow transformers' dtype
path: float64 multiply, cast to float32, then (x - mean) / std in float32.
"""

import math

import numpy as np
from PIL import Image, ImageOps

MAX_IMAGE_SIZE = 4096


def load_image(path):
    """transformers.image_utils.load_image for a local file."""
    im = Image.open(path)
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB")


def resize1_size(width, height, longest_edge):
    """_resize_output_size_rescale_to_max_len + _scale_below_upper_bound."""
    aspect = width / height
    if width >= height:
        width = longest_edge
        height = int(width / aspect)
        if height % 2 != 0:
            height += 1
    elif height > width:
        height = longest_edge
        width = int(height * aspect)
        if width % 2 != 0:
            width += 1
    height = max(height, 1)
    width = max(width, 1)
    aspect = width / height
    if width >= height and width > MAX_IMAGE_SIZE:
        width = MAX_IMAGE_SIZE
        height = int(width / aspect)
    elif height > width and height > MAX_IMAGE_SIZE:
        height = MAX_IMAGE_SIZE
        width = int(height * aspect)
    return max(width, 1), max(height, 1)


def resize2_size(width, height, m):
    """resize_for_vision_encoder target size."""
    aspect = width / height
    if width >= height:
        width = math.ceil(width / m) * m
        height = int(width / aspect)
        height = math.ceil(height / m) * m
    elif height > width:
        height = math.ceil(height / m) * m
        width = int(height * aspect)
        width = math.ceil(width / m) * m
    return width, height


def resize(im, size, resample):
    return im.resize(size, resample=resample)


def split(im, m, resample):
    """split_image: row-major crops, then the global image (if split)."""
    width, height = im.size
    if height > m or width > m:
        rows = math.ceil(height / m)
        cols = math.ceil(width / m)
        th = math.ceil(height / rows)
        tw = math.ceil(width / cols)
        arr = np.asarray(im)
        frames = []
        for r in range(rows):
            for c in range(cols):
                x0, y0 = c * tw, r * th
                x1, y1 = min(x0 + tw, width), min(y0 + th, height)
                frames.append(Image.fromarray(np.ascontiguousarray(arr[y0:y1, x0:x1, :])))
        frames.append(resize(im, (m, m), resample))
        return frames, rows, cols
    return [im], 0, 0


def stages(im, longest_edge, m, do_split=True, resample=Image.LANCZOS):
    """Returns dict of the uint8 stages of one RGB image."""
    r1 = resize(im, resize1_size(im.size[0], im.size[1], longest_edge), resample)
    out = {"resized1": r1, "resized2": None}
    if not do_split:
        out["frames"] = [resize(r1, (m, m), resample)]
        out["rows"], out["cols"] = 0, 0
        return out
    r2 = resize(r1, resize2_size(r1.size[0], r1.size[1], m), resample)
    out["resized2"] = r2
    out["frames"], out["rows"], out["cols"] = split(r2, m, resample)
    return out


def normalize(frames, rescale_factor=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """rescale + normalize + channels-first, transformers' dtype path."""
    out = []
    for f in frames:
        a = np.asarray(f)
        x = (a.astype(np.float64) * rescale_factor).astype(np.float32)
        mu = np.array(mean, dtype=x.dtype)
        sd = np.array(std, dtype=x.dtype)
        x = (x - mu) / sd
        out.append(x.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(out).astype(np.float32))
