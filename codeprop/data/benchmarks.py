"""One call to get a benchmark's examples as Python records, prepared through tfds.

    examples, report = benchmarks.load("devmap/amd", raw_dir="../shared/datasets")

The prepared tfds files go to ``tfds_dir`` (default $CODEPROP_TFDS_DIR, else tfds's own
default ``~/tensorflow_datasets``) and are reused on later calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import pathlib

NAMES = ("devmap/amd", "devmap/nvidia", "poj104")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark.

    Attributes:
      name: ``devmap/amd``, ``devmap/nvidia`` or ``poj104``.
      examples: records in raw order (devmap by ``row``, POJ-104 by problem then index);
        text features are ``str``, numbers are Python scalars, ``label`` is the class index.
      num_classes: 2 for devmap, 104 for POJ-104.
      report: what the raw reader counted (rows, labels, skips and their reasons).
    """

    name: str
    examples: list[dict]
    num_classes: int
    report: dict

    @property
    def labels(self) -> list[int]:
        return [e["label"] for e in self.examples]

    @property
    def platform(self) -> str | None:
        return self.name.split("/")[1] if self.name.startswith("devmap/") else None


def load(
    name: str,
    raw_dir: str | os.PathLike | None = None,
    tfds_dir: str | os.PathLike | None = None,
) -> Benchmark:
    """Prepares (once) and loads a benchmark.

    Args:
      name: one of `NAMES`.
      raw_dir: raw-data directory; else $CODEPROP_DATA_DIR; else download (see `raw`).
      tfds_dir: where tfds keeps prepared data; else $CODEPROP_TFDS_DIR or tfds's default.

    Returns:
      The `Benchmark`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # Heavy: imported only when loading.
    import tensorflow_datasets as tfds

    from codeprop.data import builders

    # TensorFlow only reads files here: keep it off accelerators that JAX uses.
    # A RuntimeError means TensorFlow was initialised before: leave it as it is.
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    tfds.disable_progress_bar()

    if name not in NAMES:
        raise ValueError(f"unknown benchmark {name!r}; expected one of {NAMES}")
    tfds_dir = tfds_dir or os.environ.get("CODEPROP_TFDS_DIR")
    kwargs = {"raw_dir": raw_dir, "data_dir": os.fspath(tfds_dir) if tfds_dir else None}
    if name.startswith("devmap/"):
        make = functools.partial(builders.Devmap, config=name.split("/")[1], **kwargs)
        order, num_classes = (lambda e: e["row"]), 2
    else:
        make = functools.partial(builders.Poj104, **kwargs)
        order, num_classes = (lambda e: (e["problem"], e["index"])), 104
    # Experiments run side by side (a comparison's arms) would race to prepare the same
    # data: one prepares it under a lock, the others then find it prepared.
    with _preparing(pathlib.Path(make().data_dir).parent):
        builder = make()
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    examples = []
    for ex in tfds.as_numpy(builder.as_dataset(split="full", shuffle_files=False)):
        examples.append(
            {k: v.decode("utf-8") if isinstance(v, bytes) else v.item() for k, v in ex.items()}
        )
    examples.sort(key=order)  # tfds stores examples in hashed-key order.
    report = json.loads(builder.info.metadata.get("report", "{}"))
    return Benchmark(name=name, examples=examples, num_classes=num_classes, report=report)


@contextlib.contextmanager
def _preparing(dataset_dir: pathlib.Path):
    """Holds an exclusive lock on ``<dataset_dir>/.prepare.lock`` (one process at a time)."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    with open(dataset_dir / ".prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
