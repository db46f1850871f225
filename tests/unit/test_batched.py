"""Batched decoding's windows made into sentence segments, as sequential decoding gives them."""

from whisperq.core.transcript import Segment, Word, sentences


def test_windows_when_cut_into_sentences_then_timed_by_their_words_which_are_kept():
    words = (Word(0.5, 0.9, " Budget", 0.9), Word(0.9, 1.4, " first.", 0.9), Word(2.0, 2.4, " Hiring", 0.9),
             Word(2.4, 2.9, " next?", 0.9), Word(3.5, 3.8, " Then", 0.9))
    window = Segment(0, 0.0, 30.0, " Budget first. Hiring next? Then", -0.2, 0.01, words)
    cut = sentences([window, Segment(1, 30.0, 60.0, " ", -1.0, 0.9)])
    assert [(s.id, s.start, s.end, s.text) for s in cut] == [
        (0, 0.5, 1.4, " Budget first."), (1, 2.0, 2.9, " Hiring next?"), (2, 3.5, 3.8, " Then")]
    assert [w.word for w in cut[1].words] == [" Hiring", " next?"] and cut[1].avg_logprob == -0.2


def test_windows_without_words_when_cut_then_each_sentence_gets_its_share_of_the_span():
    window = Segment(0, 10.0, 20.0, " Aaaa bbbb. Cccc dddd.", -0.3, 0.02)
    first, second = sentences([window])
    assert (first.text, second.text) == (" Aaaa bbbb.", " Cccc dddd.")
    assert first.start == 10.0 and second.end == 20.0 and 14.0 < first.end == second.start < 16.0
    assert first.words == () and second.words == ()


def test_sentences_when_words_carry_no_spaces_or_end_in_a_quote_then_text_kept_and_cut_there():
    cjk = Segment(0, 0.0, 4.0, "你好。再见", -0.2, 0.0, (Word(0.0, 1.0, "你好", 0.9), Word(1.0, 1.5, "。", 0.9),
                                                         Word(2.0, 3.0, "再见", 0.9)))
    first, second = sentences([cjk])
    assert (first.text, second.text) == ("你好。", "再见")
    quoted = Segment(0, 0.0, 10.0, ' He said "Stop." Then left.', -0.2, 0.0)
    assert [s.text for s in sentences([quoted])] == [' He said "Stop."', " Then left."]
    instant = Segment(0, 5.0, 5.0, " Yes.", -0.2, 0.0, (Word(5.0, 5.0, " Yes.", 0.9),))
    assert sentences([instant])[0].end > sentences([instant])[0].start
