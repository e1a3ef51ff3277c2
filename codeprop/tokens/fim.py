"""Fill-in-the-middle (FIM) sequence layouts, as StarCoder and CodeShell use them.

A document is cut into (prefix, middle, suffix); the model learns (and is prompted) to
produce the middle after seeing both sides:

- PSM: ``<fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle``
- SPM: ``<fim_prefix> <fim_suffix> suffix <fim_middle> prefix middle`` (the variant of
  Bavarian et al. 2022 in which the prefix runs straight into the middle)

Functions work on token-id lists; an infilling prompt is the layout without the middle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

MODES = ("psm", "spm")
SENTINEL_TOKENS = ("<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>")


@dataclasses.dataclass(frozen=True)
class Sentinels:
    """Token ids of the FIM sentinel tokens of a vocabulary."""

    prefix: int
    middle: int
    suffix: int
    pad: int | None = None

    @classmethod
    def from_vocab(cls, token_to_id) -> Sentinels:
        """Reads the ids of `SENTINEL_TOKENS` from a ``token -> id`` mapping or callable."""
        lookup = token_to_id if callable(token_to_id) else token_to_id.__getitem__
        try:
            ids = [lookup(token) for token in SENTINEL_TOKENS[:3]]
        except KeyError as missing:
            raise ValueError(f"the vocabulary has no FIM sentinel {missing}") from None
        return cls(*ids)


def arrange(
    prefix: Sequence[int],
    middle: Sequence[int],
    suffix: Sequence[int],
    sentinels: Sentinels,
    mode: str = "psm",
) -> list[int]:
    """The training sequence of one FIM example (without end-of-text)."""
    if mode == "psm":
        return [sentinels.prefix, *prefix, sentinels.suffix, *suffix, sentinels.middle, *middle]
    if mode == "spm":
        return [sentinels.prefix, sentinels.suffix, *suffix, sentinels.middle, *prefix, *middle]
    raise ValueError(f"unknown FIM mode {mode!r}; one of {MODES}")


def infilling_prompt(
    prefix: Sequence[int], suffix: Sequence[int], sentinels: Sentinels, mode: str = "psm"
) -> list[int]:
    """The prompt whose continuation is the middle between ``prefix`` and ``suffix``."""
    return arrange(prefix, (), suffix, sentinels, mode)
