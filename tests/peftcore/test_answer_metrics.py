"""Final answers scored on their own where the data marks them (GSM8K's "#### 72"): a generation that reasons
differently but reaches the right number counts as right, and one that never states an answer is told apart."""

import json

from peftcore.metrics import answer_metrics, answer_pattern, final_answer, generation_metrics


def test_gsm8k_answers_are_found_and_compared_without_separators(shared_data):
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:50]
    references = [json.loads(line)["answer"] for line in lines]
    pattern = answer_pattern(references)
    assert pattern is not None and final_answer(references[0], pattern) is not None
    assert final_answer("so she pays $1,200.\n#### 1,200", pattern) == "1200"

    right = "She had 3 + 4 = 7 apples.\n#### " + final_answer(references[0], pattern)
    generations = [right, "I do not know", "#### 999999"] + ["no answer"] * (len(references) - 3)
    scores = answer_metrics(generations, references)
    assert scores["answer_format"] == 2 / len(references)
    assert scores["answer_match"] == 1 / len(references)


def test_other_markers_and_none():
    assert answer_metrics(["The answer is 12."], ["Because 3 x 4. The answer is 12"])["answer_match"] == 1.0
    assert answer_metrics([r"so \boxed{5}"], [r"thus \boxed{5}"])["answer_match"] == 1.0
    plain = ["a kind reply", "another"]
    assert answer_metrics(plain, plain) == {}  # no marker in the data: nothing extra is claimed
    scores, _ = generation_metrics(["#### 4"], ["2 + 2\n#### 4"])
    assert scores["answer_match"] == 1.0 and scores["exact_match"] == 0.0 and scores["answer_pattern"]
