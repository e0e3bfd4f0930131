"""labutils.data.numbers: the numbers-to-words task, against hand-written cases."""

import pytest

from labutils.data import numbers


@pytest.mark.parametrize("n,words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (45, "forty five"),
    (100, "one hundred"), (110, "one hundred ten"), (4071, "four thousand seventy one"),
    (10000, "ten thousand"), (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    (1001001, "one million one thousand one"), (2000000000, "two billion"),
])
def test_number_to_words(n, words):
    assert numbers.number_to_words(n) == words


def test_number_words_cover_the_task():
    sample = [*range(1000), 10**3, 10**6, 10**9]
    used = {w for n in sample for w in numbers.number_to_words(n).split()}
    assert used == set(numbers.NUMBER_WORDS)


@pytest.mark.parametrize("bad", [-1, 10**12, 3.0, True])
def test_number_to_words_rejects(bad):
    with pytest.raises(ValueError, match="integer"):
        numbers.number_to_words(bad)


def test_sample_numbers_distinct_and_in_range():
    nums = numbers.sample_numbers(3000, 5, seed=1)
    assert len(set(nums.tolist())) == 3000 and nums.min() >= 0 and nums.max() < 10**5
    digits = [len(str(n)) for n in nums]
    assert {1, 2, 3, 4, 5} <= set(digits)
    assert (numbers.sample_numbers(3000, 5, seed=1) == nums).all()
    with pytest.raises(ValueError, match="too many"):
        numbers.sample_numbers(80, 2)


def test_vocab_and_collate():
    pairs = numbers.number_pairs([4071, 12])
    assert pairs[0] == (list("4071"), ["four", "thousand", "seventy", "one"])
    src_vocab = numbers.Vocab(t for s, _ in pairs for t in s)
    tgt_vocab = numbers.Vocab(t for _, w in pairs for t in w)
    assert src_vocab.itos[:3] == ["<pad>", "<bos>", "<eos>"] and len(src_vocab) == 3 + 5
    src, tgt_in, tgt_out = numbers.collate(pairs, src_vocab, tgt_vocab)
    assert src.shape == (2, 5) and tgt_in.shape == tgt_out.shape == (2, 5)
    assert src[1].tolist()[2:] == [2, 0, 0]  # "12" <eos> <pad> <pad>
    assert tgt_in[:, 0].tolist() == [1, 1]
    assert (tgt_in[:, 1:] == tgt_out[:, :-1]).all()  # shifted by one: teacher forcing
    assert tgt_vocab.decode(tgt_out[0]) == pairs[0][1]
    assert tgt_vocab.decode(tgt_out[1]) == ["twelve"]
    with pytest.raises(KeyError, match="not in the vocabulary"):
        src_vocab.encode(["x"])
