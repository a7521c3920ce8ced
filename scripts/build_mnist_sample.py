"""Rebuild the bundled MNIST subset ``ot_robust/assets/mnist_sample.npz`` from the official MNIST files.

Stratified draw with a fixed seed: 1,000 train images per class from the 60,000 training images and 200 test images
per class from the 10,000 test images. The official indices are stored beside the arrays, so tests can check that
every bundled image is identical to its official original.

Usage: python scripts/build_mnist_sample.py [--root ../shared/data] [--seed 0]
"""

import argparse
import json

import numpy as np

from ot_robust.core.data import SAMPLE_META, SAMPLE_PATH, get_dataset, sample_checksum

PER_CLASS = {"train": 1000, "test": 200}


def stratified_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = [np.sort(rng.choice(np.flatnonzero(labels == c), per_class, replace=False)) for c in range(10)]
    return np.sort(np.concatenate(idx))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="data root holding MNIST/raw (default $OT_ROBUST_DATA)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    arrays, meta = {}, {"seed": args.seed, "per_class": PER_CLASS, "source": "official MNIST idx files",
                        "sha256": {}}
    for split, per_class in PER_CLASS.items():
        ds = get_dataset("mnist", split, root=args.root, augment=False)
        labels = ds.targets.numpy()
        idx = stratified_indices(labels, per_class, rng)
        images = ds.images[idx, 0].numpy()
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[idx].astype(np.int64)
        arrays[f"{split}_indices"] = idx.astype(np.int64)
        meta["sha256"][split] = sample_checksum(images, labels[idx])
    np.savez_compressed(SAMPLE_PATH, **arrays)
    SAMPLE_META.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {SAMPLE_PATH} ({SAMPLE_PATH.stat().st_size / 1e6:.1f} MB) and {SAMPLE_META}")


if __name__ == "__main__":
    main()
