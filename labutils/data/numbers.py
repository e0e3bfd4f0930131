"""The numbers-to-words translation task of notebook 05: numbers written in digits, to be
translated into English words ("4071" -> "four thousand seventy one"); a token vocabulary
and the collate function that pads batches for :class:`labutils.transformer.Transformer`.

Generated in memory from a seed: nothing is downloaded or cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"))
NUMBER_WORDS = (*_ONES, *_TENS[2:], "hundred", *(name for _, name in _SCALES))
"""Every word that :func:`number_to_words` uses: the target vocabulary of the task."""


def _below_thousand(n: int) -> list[str]:
    words = [_ONES[n // 100], "hundred"] if n >= 100 else []
    n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 10^12, without "and" or hyphens: 4071 -> "four thousand
    seventy one", 110 -> "one hundred ten"."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n < 10**12:
        raise ValueError(f"number_to_words needs an integer in [0, 10^12), got {n!r}")
    n, words = int(n), []
    for value, name in _SCALES:
        if n >= value:
            words += [*_below_thousand(n // value), name]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


class Vocab:
    """Tokens <-> ids, with <pad> = 0, <bos> = 1, <eos> = 2 first."""

    SPECIALS = ("<pad>", "<bos>", "<eos>")
    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Iterable[str]):
        self.itos = [*self.SPECIALS, *sorted(set(tokens) - set(self.SPECIALS))]
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str], bos: bool = False, eos: bool = True) -> list[int]:
        """Ids of ``tokens``, with <bos> in front and <eos> at the end if asked."""
        unknown = [t for t in tokens if t not in self.stoi]
        if unknown:
            raise KeyError(f"tokens {unknown} are not in the vocabulary; build it from all data")
        return [self.bos_id] * bos + [self.stoi[t] for t in tokens] + [self.eos_id] * eos

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to the first <eos>, without <pad> and <bos>."""
        out = []
        for i in (int(i) for i in ids):
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return out


def sample_numbers(count: int, max_digits: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct integers with 1 to ``max_digits`` digits, the number of digits
    uniform (so that short numbers are not swamped by long ones), in random order."""
    available = 10**max_digits
    if count > available // 2:
        raise ValueError(f"{count} distinct numbers of at most {max_digits} digits are too "
                         "many for a fair sample; lower the count or raise max_digits")
    rng = np.random.default_rng(seed)
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        digits = rng.integers(1, max_digits + 1, size=count)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        for n in rng.integers(low, 10**digits):
            chosen.setdefault(int(n), None)
    return np.array(list(chosen)[:count])


def number_pairs(numbers: Iterable[int]) -> list[tuple[list[str], list[str]]]:
    """(source, target) token lists: digits as characters, the words split on spaces."""
    return [(list(str(int(n))), number_to_words(int(n)).split()) for n in numbers]


def collate(pairs, src_vocab: Vocab, tgt_vocab: Vocab):
    """A batch of (source, target) token lists -> padded id tensors (src, tgt_in, tgt_out):
    src (B, Tx) ends with <eos>; tgt_in (B, Ty) = <bos> + target; tgt_out = target + <eos>."""
    src = [torch.tensor(src_vocab.encode(s)) for s, _ in pairs]
    tgt = [torch.tensor(tgt_vocab.encode(t, bos=True)) for _, t in pairs]
    src = pad_sequence(src, batch_first=True, padding_value=src_vocab.pad_id)
    tgt = pad_sequence(tgt, batch_first=True, padding_value=tgt_vocab.pad_id)
    return src, tgt[:, :-1], tgt[:, 1:]
