"""tensorflow-datasets builders for the benchmarks: ``devmap`` (amd, nvidia) and ``poj104``.

Both read a raw-data directory (argument ``raw_dir`` or $CODEPROP_DATA_DIR) or download the
checked raw files (see `codeprop.data.raw`). Each has one split, ``full``, in the raw order
(every example carries its position, ``row``/``index``); the evaluation splits are computed
from labels by `codeprop.data.splits`, deterministically and seeded, so one prepared dataset
serves 10-fold CV, 80/10/10 and 3:1:1 alike.

    builder = Devmap(config="amd", raw_dir="../shared/datasets")
    builder.download_and_prepare()
    ds = builder.as_dataset(split="full")
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow_datasets as tfds

from codeprop.data import devmap, poj104

_DEVMAP_CITATION = """@inproceedings{cummins2017end,
  title={End-to-end Deep Learning of Optimization Heuristics},
  author={Cummins, Chris and Petoumenos, Pavlos and Wang, Zheng and Leather, Hugh},
  booktitle={PACT}, year={2017}}"""
_POJ_CITATION = """@inproceedings{mou2016convolutional,
  title={Convolutional Neural Networks over Tree Structures for Programming Language Processing},
  author={Mou, Lili and Li, Ge and Zhang, Lu and Wang, Tao and Jin, Zhi},
  booktitle={AAAI}, year={2016}}"""


class _RawDirMixin:
    """Lets a builder take ``raw_dir=`` besides the usual tfds arguments."""

    def __init__(self, *, raw_dir: str | os.PathLike | None = None, **kwargs):
        self._raw_dir = raw_dir
        super().__init__(**kwargs)


class Devmap(_RawDirMixin, tfds.core.GeneratorBasedBuilder):
    """OpenCL kernels labelled with the faster device (CPU 0 / GPU 1) on one platform."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "CGO'17 CSVs, NCC kernels_cl sources and NCC IR."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="amd", description="AMD Tahiti 7970 vs Intel i7-3820"),
        tfds.core.BuilderConfig(name="nvidia", description="NVIDIA GTX 970 vs Intel i7-3820"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        ints = {k: np.int64 for k in (*devmap.STATIC_FEATURES, "transfer", "wgsize")}
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "row": np.int32,
                    "benchmark": tfds.features.Text(),
                    "dataset": tfds.features.Text(),
                    "suite": tfds.features.Text(),
                    "source": tfds.features.Text(),
                    "source_file": tfds.features.Text(),
                    "normalized_source": tfds.features.Text(),
                    "ir_file": tfds.features.Text(),
                    **ints,
                    "runtime_cpu": np.float64,
                    "runtime_gpu": np.float64,
                    "label": tfds.features.ClassLabel(names=["CPU", "GPU"]),
                }
            ),
            supervised_keys=("normalized_source", "label"),
            homepage="https://github.com/ChrisCummins/paper-end2end-dl",
            citation=_DEVMAP_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Raw files are fetched and checked by codeprop.data.raw.
        data = devmap.read_platform(self.builder_config.name, self._raw_dir)
        self.info.metadata["report"] = json.dumps(data["report"])
        return {"full": self._generate_examples(data["examples"])}

    def _generate_examples(self, examples):
        for ex in examples:
            yield ex["row"], {k: v for k, v in ex.items() if k != "ir"}


class Poj104(_RawDirMixin, tfds.core.GeneratorBasedBuilder):
    """POJ-104: 52,000 C/C++ programs, 104 problems (label = problem id - 1)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "CodeXGLUE text of the TBCNN programs, latin-1 decoded."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "index": np.int32,
                    "problem": np.int32,
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(
                        names=[str(i) for i in range(1, poj104.NUM_CLASSES + 1)]
                    ),
                }
            ),
            supervised_keys=("text", "label"),
            homepage="https://sites.google.com/site/treebasedcnn/",
            citation=_POJ_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        data = poj104.read_programs(self._raw_dir)
        self.info.metadata["report"] = json.dumps(data["report"])
        return {"full": self._generate_examples(data["examples"])}

    def _generate_examples(self, examples):
        for ex in examples:
            # tfds Text features are UTF-8: latin-1 decoding maps every byte to one code point,
            # so the original bytes come back with text.encode('latin-1').
            yield ex["id"], {**ex, "label": ex["problem"] - 1}
