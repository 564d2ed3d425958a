"""Compare `snapvlm preprocess --npy` output with the Pillow reference.

Usage: compare.py MODEL_DIR OUT.npy [--no-split] [--image-size L] IMAGE...
Prints the max abs difference of pixel_values (0.0 means bit-exact).
"""

import json
import os
import sys

import numpy as np

import reference as ref


def main(argv):
    model, npy, rest = argv[0], argv[1], argv[2:]
    split, size, images = True, None, []
    i = 0
    while i < len(rest):
        if rest[i] == "--no-split":
            split = False
        elif rest[i] == "--image-size":
            i += 1
            size = int(rest[i])
        else:
            images.append(rest[i])
        i += 1
    with open(os.path.join(model, "preprocessor_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("resample", 1) != 1:
        sys.exit("compare.py: only resample 1 (LANCZOS) is implemented in the reference")
    L = size or cfg["size"]["longest_edge"]
    M = cfg["max_image_size"]["longest_edge"]
    split = split and cfg.get("do_image_splitting", True)
    frames = []
    for p in images:
        st = ref.stages(ref.load_image(p), L, M, split)
        frames += st["frames"]
    want = ref.normalize(frames, cfg.get("rescale_factor", 1 / 255),
                         cfg.get("image_mean", [0.5] * 3), cfg.get("image_std", [0.5] * 3))[None]
    got = np.load(npy)
    if got.shape != want.shape:
        print("shape differs: snapvlm %s, reference %s" % (got.shape, want.shape))
        return 1
    d = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
    print("shape %s max abs diff %g" % (list(got.shape), d))
    return 0 if d == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
