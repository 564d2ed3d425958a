#!/usr/bin/env python3
"""Write a model into a Hugging Face hub cache exactly as huggingface_hub does.

Uses only the Python standard library, so the Go tests of internal/hub can
check that snapvlm reads a cache written in huggingface_hub's layout without
huggingface_hub installed:

    models--ORG--NAME/blobs/<etag>                 file contents
    models--ORG--NAME/snapshots/<commit>/<path>    relative symlink to the blob
    models--ORG--NAME/refs/<revision>              the commit, no newline
    .locks/models--ORG--NAME/<etag>.lock           empty lock files

Blob names follow huggingface_hub's hf_hub_download: the LFS sha256
(X-Linked-Etag) for files stored with Git LFS, the git blob sha1 (ETag) for
the others. As in the Hub's ONNX repos, *.onnx and *.onnx_data* are LFS.
Symlinks are made like huggingface_hub's _create_symlink:
os.path.relpath(blob, os.path.dirname(pointer)).

Usage:
    make_cache.py --cache DIR --repo ORG/NAME --commit SHA [--revision main] SRC_DIR

SRC_DIR holds the repo's files at their repo paths (onnx/x.onnx, config.json...).
"""

import argparse
import hashlib
import os
import sys


def is_lfs(path):
    return path.endswith(".onnx") or ".onnx_data" in path


def etag_of(path, data):
    if is_lfs(path):
        return hashlib.sha256(data).hexdigest()
    h = hashlib.sha1()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def repo_folder_name(repo_id):
    return "--".join(["models", *repo_id.split("/")])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--revision", default="main")
    ap.add_argument("src")
    args = ap.parse_args()

    storage = os.path.join(args.cache, repo_folder_name(args.repo))
    locks = os.path.join(args.cache, ".locks", repo_folder_name(args.repo))
    for root, _, files in os.walk(args.src):
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, args.src).replace(os.sep, "/")
            with open(full, "rb") as f:
                data = f.read()
            etag = etag_of(rel, data)
            blob = os.path.join(storage, "blobs", etag)
            pointer = os.path.join(storage, "snapshots", args.commit, *rel.split("/"))
            os.makedirs(os.path.dirname(blob), exist_ok=True)
            os.makedirs(os.path.dirname(pointer), exist_ok=True)
            os.makedirs(locks, exist_ok=True)
            open(os.path.join(locks, etag + ".lock"), "a").close()
            if not os.path.exists(blob):
                with open(blob + ".incomplete", "wb") as f:
                    f.write(data)
                os.replace(blob + ".incomplete", blob)
            if os.path.lexists(pointer):
                os.remove(pointer)
            os.symlink(os.path.relpath(os.path.abspath(blob), os.path.dirname(os.path.abspath(pointer))), pointer)
    if args.revision != args.commit:
        ref = os.path.join(storage, "refs", *args.revision.split("/"))
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        with open(ref, "w") as f:
            f.write(args.commit)
    print(os.path.join(storage, "snapshots", args.commit))
    return 0


if __name__ == "__main__":
    sys.exit(main())
