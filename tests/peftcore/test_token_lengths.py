"""Token-length statistics: the histogram comes from the model's own tokenizer, the summary from the histogram."""

from peftcore.tasks import load_tokenizer
from peftcore.token_lengths import column_texts, length_histogram, summarise, truncation_warning


def test_percentiles_max_and_truncation_follow_the_histogram():
    histogram = {"3": 10, "5": 8, "40": 2}  # JSON keys are strings
    assert summarise(histogram) == {"rows": 20, "p50": 3, "p95": 40, "max": 40}
    cut = summarise(histogram, max_length=4)
    assert (cut["truncated_rows"], cut["truncated_share"]) == (10, 0.5)
    assert summarise(histogram, max_length=40)["truncated_rows"] == 0
    assert summarise({}) == {"rows": 0, "p50": None, "p95": None, "max": None}


def test_a_warning_only_when_more_than_a_few_rows_are_cut():
    assert truncation_warning(summarise({"3": 96, "50": 4}, max_length=10)) is None
    message = truncation_warning(summarise({"3": 90, "50": 10}, max_length=10))
    assert "10 rows (10%) are longer than the maximum length of 10 tokens" in message and "to 50" in message


def test_the_histogram_counts_the_models_tokens_without_cutting(tiny_model_dir, tmp_path):
    path = tmp_path / "d.tsv"
    texts = ["a good film", "bad", "a " * 300 + "long one"]
    path.write_text("text\tlabel\n" + "".join(f"{t}\t1\n" for t in texts) + "\t0\n")
    assert list(column_texts(path, "tsv", "text")) == texts  # the empty cell is skipped
    tokenizer = load_tokenizer(tiny_model_dir)
    expected = {}
    for text in texts:
        n = len(tokenizer(text)["input_ids"])
        expected[n] = expected.get(n, 0) + 1
    histogram = length_histogram(tiny_model_dir, column_texts(path, "tsv", "text"))
    assert histogram == expected and max(histogram) > 300


def test_the_advice_never_exceeds_what_the_model_reads(tiny_model_dir):
    summary = summarise({"100": 50, "900": 50}, max_length=128)
    assert "raise the maximum length to 900" in truncation_warning(summary)
    assert "reads at most 512 tokens" in truncation_warning(summary, model_limit=512)
    from peftcore.token_lengths import model_token_limit

    assert model_token_limit(tiny_model_dir) > 0 and model_token_limit(tiny_model_dir / "nope") is None
