from __future__ import annotations

from vlprep.text.asr import Line, clean_lines


def cleaned(*lines: tuple[float, float, str]) -> list[tuple[float, float, str]]:
    return [(x.start, x.end, x.text) for x in clean_lines([Line(*line) for line in lines])]


def test_blank_lines_dropped_and_space_normalised():
    assert cleaned((0, 1, "  "), (1, 2, "hello\nthere   friend"), (2, 3, None)) == [
        (1, 2, "hello there friend")]


def test_repeat_of_the_previous_end_is_merged():
    assert cleaned((0, 2, "so today we make bread"), (2, 3, "make bread")) == [
        (0, 3, "so today we make bread")]


def test_line_that_extends_the_previous_replaces_it():
    assert cleaned((0, 2, "so today we"), (1, 4, "so today we make bread")) == [
        (0, 4, "so today we make bread")]


def test_word_overlap_goes_to_the_later_line():
    got = cleaned((0, 3, "first we chop the onions"), (2, 5, "the onions go in the pan"),
                  (5, 6, "and stir"))
    assert got == [(0, 2, "first we chop"), (2, 5, "the onions go in the pan"),
                   (5, 6, "and stir")]


def test_rolling_youtube_captions():
    """Three rolling lines where each repeats the previous tail, as in raw_caption.json."""
    got = cleaned((0.0, 4.0, "hi guys welcome back"), (2.0, 6.0, "welcome back to my kitchen"),
                  (4.0, 8.0, "to my kitchen today we bake"))
    assert [t for _, _, t in got] == ["hi guys", "welcome back", "to my kitchen today we bake"]
    assert got[0][:2] == (0.0, 2.0) and got[1][:2] == (2.0, 4.0)


def test_end_never_before_start():
    assert cleaned((3, 5, "we add the salt"), (2, 6, "salt and pepper")) == [
        (3, 3, "we add the"), (2, 6, "salt and pepper")]


def test_words_not_characters_are_compared():
    """MMPT compares characters: 'at home' would be merged into 'the cat'. Words aren't."""
    assert cleaned((0, 1, "look at the cat"), (1, 2, "at")) == [
        (0, 1, "look at the cat"), (1, 2, "at")]
    assert cleaned((0, 1, "the cat"), (1, 2, "cattle run")) == [
        (0, 1, "the cat"), (1, 2, "cattle run")]


def test_case_insensitive_and_deterministic():
    lines = [(0, 2, "Put It In"), (1, 3, "put it in the oven"), (3, 4, "THE OVEN")]
    first = cleaned(*lines)
    assert first == [(0, 4, "put it in the oven")]
    assert all(cleaned(*lines) == first for _ in range(5))


def test_missing_times_are_kept_missing():
    assert cleaned((None, None, "a b"), (None, None, "b c")) == [
        (None, None, "a"), (None, None, "b c")]
