import json

import pytest

from peftcore.data import DataError, detect_format, inspect_file, read_examples, read_records


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def errors_of(report):
    return [(e["row"], e["message"]) for e in report["errors"]]


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.csv", "csv"),
        ("a.TSV", "tsv"),
        ("a.tab", "tsv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "json"),
        ("a.parquet", "parquet"),
    ],
)
def test_detect_format_by_extension(name, fmt):
    assert detect_format(name) == fmt


def test_detect_format_explicit_and_unknown():
    assert detect_format("upload.bin", "TSV") == "tsv"
    with pytest.raises(DataError, match="supported extensions: .csv, .tsv"):
        detect_format("data.xlsx")
    with pytest.raises(DataError, match="unknown format 'xml'"):
        detect_format("data.csv", "xml")


def test_inspect_reports_unknown_extension_without_raising(tmp_path):
    report = inspect_file(write(tmp_path, "data.xlsx", "a,b\n1,2\n"))
    assert not report["ok"] and report["format"] is None
    assert "supported extensions" in report["errors"][0]["message"]


def test_real_sst2_dev_inspects_ok(shared_data):
    report = inspect_file(shared_data / "sst2" / "dev.tsv", text_column="sentence", label_column="label")
    assert report["ok"], report["errors"]
    assert report["format"] == "tsv"
    assert report["rows"] == 872
    assert report["columns"] == ["sentence", "label"]
    assert report["labels"] == {"0": 428, "1": 444}
    assert len(report["preview"]) == 10 and set(report["preview"][0]) == {"sentence", "label"}
    json.dumps(report)


def test_csv_wrong_field_count_is_numbered_like_an_editor(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\ngood,1\n\nbad,0,extra\n"quoted, comma",0\nonly\n')
    report = inspect_file(path, text_column="text", label_column="label")
    assert errors_of(report) == [
        (4, "expected 2 fields, found 3 (put text containing commas in double quotes)"),
        (6, "expected 2 fields, found 1"),
    ]
    assert report["rows"] == 2 and report["error_count"] == 2 and not report["ok"]
    assert report["preview"][1] == {"text": "quoted, comma", "label": "0"}


def test_csv_multiline_quoted_field_keeps_row_numbers(tmp_path):
    path = write(tmp_path, "d.csv", 'text,label\n"two\nlines",1\nnext,0,x\n')
    report = inspect_file(path)
    assert errors_of(report) == [(4, "expected 2 fields, found 3 (put text containing commas in double quotes)")]
    assert report["preview"][0]["text"] == "two\nlines"


def test_tsv_has_no_quoting(tmp_path):
    path = write(tmp_path, "d.tsv", 'sentence\tlabel\nhe said "hi\t1\n"quoted\tstart\t0\n')
    report = inspect_file(path, text_column="sentence", label_column="label")
    assert errors_of(report) == [(3, "expected 2 fields, found 3")]
    assert report["preview"][0] == {"sentence": 'he said "hi', "label": "1"}


def test_missing_column_is_a_file_level_error(tmp_path):
    path = write(tmp_path, "d.csv", "sentence,label\nok,1\n")
    report = inspect_file(path, text_column="text", label_column="label")
    assert errors_of(report) == [(None, "column 'text' not found; columns are: sentence, label")]
    assert report["labels"] == {"1": 1}
    assert not report["ok"]


def test_empty_text_and_label_per_row(tmp_path):
    path = write(tmp_path, "d.tsv", "sentence\tlabel\nfine\t1\n  \t0\nno label\t\n")
    report = inspect_file(path, text_column="sentence", label_column="label")
    assert errors_of(report) == [
        (3, "the text column 'sentence' is empty"),
        (4, "the label column 'label' is empty"),
    ]
    assert report["rows"] == 1
    assert report["empty_values"] == {"sentence": 1, "label": 1}


def test_non_utf8_row_is_numbered_and_others_still_read(tmp_path):
    path = write(tmp_path, "d.csv", b"text,label\nok,1\ncaf\xe9,0\nfine,0\n")
    report = inspect_file(path, text_column="text", label_column="label")
    assert [e["row"] for e in report["errors"]] == [3]
    assert "not valid UTF-8 (byte 0xe9" in report["errors"][0]["message"]
    assert report["rows"] == 2


def test_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    path = write(tmp_path, "d.csv", b"\xef\xbb\xbftext,label\nhello,1\n")
    assert inspect_file(path, text_column="text", label_column="label")["ok"]


def test_empty_file(tmp_path):
    report = inspect_file(write(tmp_path, "d.csv", b""))
    assert errors_of(report) == [(None, "the file is empty")] and report["rows"] == 0 and not report["ok"]


def test_blank_lines_only(tmp_path):
    assert errors_of(inspect_file(write(tmp_path, "d.csv", "\n\n  \n"))) == [(None, "the file is empty")]
    assert errors_of(inspect_file(write(tmp_path, "d.jsonl", "\n\n"))) == [(None, "the file has no data rows")]


def test_header_only(tmp_path):
    report = inspect_file(write(tmp_path, "d.tsv", "sentence\tlabel\n"), text_column="sentence")
    assert errors_of(report) == [(None, "the file has a header line but no data rows")]
    assert report["columns"] == ["sentence", "label"]


def test_duplicate_header_names(tmp_path):
    report = inspect_file(write(tmp_path, "d.csv", "text,text\na,b\n"))
    assert errors_of(report) == [(None, "the header line names a column more than once: text")]


def test_a_header_of_100000_columns_is_refused_by_its_count(tmp_path):
    # The duplicate check was quadratic: this 700 KB header cost minutes of web CPU before it was stored.
    header = ",".join(f"c{i}" for i in range(100_000))
    report = inspect_file(write(tmp_path, "wide.csv", header + "\n" + ",".join("x" * 100_000) + "\n"))
    assert errors_of(report) == [
        (None, "the header line names more than 1,000 columns; keep the columns training needs (at most 1,000)")
    ]


def test_a_repeated_name_among_many_columns_is_found(tmp_path):
    header = [f"c{i}" for i in range(999)] + ["c5"]
    report = inspect_file(write(tmp_path, "d.csv", ",".join(header) + "\n" + ",".join("x" * 1000) + "\n"))
    assert errors_of(report) == [(None, "the header line names a column more than once: c5")]


@pytest.mark.parametrize(
    "name, content",
    [("d.csv", "{long},label\na,1\n"), ("d.jsonl", '{{"{long}": "a", "label": 1}}\n')],
)
def test_column_names_longer_than_a_job_can_store_are_refused(tmp_path, name, content):
    long = "x" * 201
    report = inspect_file(write(tmp_path, name, content.format(long=long)))
    assert report["errors"] and "column names are at most 200" in report["errors"][0]["message"]
    assert not report["ok"]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x01\x02binary\x00junk", "this is not a text file (it contains binary data)"),
        (b"PK\x03\x04rest-of-a-zip", "this looks like an Excel workbook or a zip archive"),
        ("text,label\n".encode("utf-16"), "the file is UTF-16 encoded; save it as UTF-8"),
    ],
)
def test_not_a_text_file(tmp_path, content, message):
    report = inspect_file(write(tmp_path, "d.csv", content))
    assert report["errors"][0]["row"] is None and message in report["errors"][0]["message"]
    assert not report["ok"]


def test_jsonl_errors_are_numbered_by_line(tmp_path):
    lines = ['{"text": "a", "label": 1}', "", '{"text": "b", "label": ', "[1, 2]", '{"text": "c", "label": 0}']
    report = inspect_file(write(tmp_path, "d.jsonl", "\n".join(lines) + "\n"), text_column="text", label_column="label")
    assert report["errors"][0]["row"] == 3 and report["errors"][0]["message"].startswith("invalid JSON: ")
    assert report["errors"][1] == {"row": 4, "message": "expected a JSON object {...} on each line, found a list"}
    assert report["rows"] == 2 and report["labels"] == {"0": 1, "1": 1}
    assert report["format"] == "jsonl"


def test_jsonl_key_missing_in_some_rows_or_all(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n{"label": "y"}\n{"text": "c", "label": "x"}\n')
    report = inspect_file(path, text_column="text", label_column="label")
    assert errors_of(report) == [(2, "the text column 'text' is empty")]
    assert report["columns"] == ["text", "label"] and report["empty_values"] == {"text": 1, "label": 0}
    assert report["preview"][1] == {"text": "", "label": "y"}
    report = inspect_file(path, text_column="sentence", label_column="label")
    assert errors_of(report) == [(None, "column 'sentence' not found; columns are: text, label")]


def test_jsonl_columns_in_order_of_first_appearance(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"a": 1}\n{"b": 2, "a": 3}\n')
    report = inspect_file(path)
    assert report["columns"] == ["a", "b"] and report["empty_values"] == {"a": 0, "b": 1}


def test_text_that_is_a_list_is_an_error(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": ["a"], "label": 1}\n')
    report = inspect_file(path, text_column="text", label_column="label")
    assert errors_of(report) == [(1, "the text column 'text' holds a list, expected a single value")]


def test_json_list_of_objects(tmp_path):
    data = [{"text": "a", "label": 1}, {"text": "b", "label": 0}, "oops", {"text": "", "label": 1}]
    report = inspect_file(write(tmp_path, "d.json", json.dumps(data)), text_column="text", label_column="label")
    assert report["format"] == "json"
    assert errors_of(report) == [
        (3, "expected a JSON object {...}, found a string"),
        (4, "the text column 'text' is empty"),
    ]
    assert report["rows"] == 2


def test_json_file_level_problems(tmp_path):
    report = inspect_file(write(tmp_path, "d.json", '{"text": "a"}'))
    assert "expected a list of objects" in report["errors"][0]["message"]
    assert ".jsonl" in report["errors"][0]["message"]
    report = inspect_file(write(tmp_path, "e.json", '[{"text": "a"},\n {"text": }]'))
    assert report["errors"][0]["row"] is None and "line 2" in report["errors"][0]["message"]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", None], "label": [1, 0, 1]}), path)
    report = inspect_file(path, text_column="text", label_column="label")
    assert report["format"] == "parquet" and report["columns"] == ["text", "label"]
    assert errors_of(report) == [(3, "the text column 'text' is empty")]
    assert report["labels"] == {"0": 1, "1": 2}
    report = inspect_file(write(tmp_path, "bad.parquet", b"not parquet at all"))
    assert "not a readable Parquet file" in report["errors"][0]["message"]


def test_parquet_with_a_repeated_column_name_is_refused_as_csv_is(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), path)
    report = inspect_file(path)
    assert errors_of(report) == [(None, "the file's schema names a column more than once: text")]


def test_errors_are_capped_but_counted(tmp_path):
    content = "text,label\n" + "".join("a,b,c\n" for _ in range(120)) + "ok,1\n"
    report = inspect_file(write(tmp_path, "d.csv", content), max_errors=10)
    assert len(report["errors"]) == 10 and report["error_count"] == 120
    assert [e["row"] for e in report["errors"]] == list(range(2, 12))
    assert report["rows"] == 1


def test_labels_sorted_numerically_and_capped(tmp_path):
    rows = "".join(f"t,{n}\n" for n in (10, 2, 2, 1))
    report = inspect_file(write(tmp_path, "d.csv", "text,label\n" + rows), label_column="label")
    assert list(report["labels"].items()) == [("1", 1), ("2", 2), ("10", 1)]
    many = "".join(f"t,{n}\n" for n in range(1100))
    report = inspect_file(write(tmp_path, "m.csv", "text,label\n" + many), label_column="label")
    assert len(report["labels"]) == 1000 and report["labels_truncated"]


def test_preview_is_limited(tmp_path):
    content = "text,label\n" + "".join(f"row {i},1\n" for i in range(30))
    report = inspect_file(write(tmp_path, "d.csv", content), preview_rows=3)
    assert [r["text"] for r in report["preview"]] == ["row 0", "row 1", "row 2"] and report["rows"] == 30


def test_read_records_raises_with_row(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\na,1\nb\n")
    records = read_records(path)
    assert next(records) == (2, {"text": "a", "label": "1"})
    with pytest.raises(DataError) as caught:
        next(records)
    assert caught.value.row == 3 and str(caught.value) == "row 3: expected 2 fields, found 1"


def test_read_examples(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"t": "good", "l": 1}\n\n{"t": "bad", "l": " 0 "}\n')
    assert [tuple(e) for e in read_examples(path, text_column="t", label_column="l")] == [
        (1, "good", "1"),
        (3, "bad", "0"),
    ]
    with pytest.raises(DataError, match="column 'text' not found; columns are: t, l") as caught:
        read_examples(path, text_column="text", label_column="l")
    assert caught.value.row is None
    empty = write(tmp_path, "e.csv", "t,l\na,1\n,0\n")
    with pytest.raises(DataError) as caught:
        read_examples(empty, text_column="t", label_column="l")
    assert caught.value.row == 3 and "the text column 't' is empty" in str(caught.value)


# --- warnings: what training can live with but a user should know -------------------------------------


def warnings_by_code(report):
    return {w["code"]: w for w in report["warnings"]}


def test_repeated_texts_are_named_by_row_and_conflicting_labels_flagged(tmp_path):
    path = write(
        tmp_path,
        "d.tsv",
        "text\tlabel\ngood film\tpos\nbad film\tneg\n  good   film \tpos\nbad film\tpos\nfine\tpos\nawful\tneg\n",
    )
    found = warnings_by_code(inspect_file(path, text_column="text", label_column="label"))
    assert found["duplicates"]["rows"] == [4, 5]  # whitespace differences do not hide a repeat
    assert (
        "2 row(s) repeat the text of an earlier row (row 4 repeats row 2, row 5 repeats row 3)"
        in found["duplicates"]["message"]
    )
    assert (
        found["conflicting_labels"]["rows"] == [5]
        and "row 5 says 'pos', row 3 'neg'" in found["conflicting_labels"]["message"]
    )
    assert set(found) == {"duplicates", "conflicting_labels"}


def test_without_a_text_column_whole_rows_are_compared(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"a": 1, "b": "x"}\n{"b": "x", "a": 1}\n{"a": 1, "b": "y"}\n')
    found = warnings_by_code(inspect_file(path))
    assert found["duplicates"]["rows"] == [2] and "repeat an earlier row" in found["duplicates"]["message"]


def test_imbalance_and_labels_too_small_to_split_are_warned_not_refused(tmp_path):
    rows = "".join(f"text {i}\tbig\n" for i in range(40)) + "one\tsmall\ntwo\tsmall\nthree\ttiny\n"
    report = inspect_file(write(tmp_path, "d.tsv", "text\tlabel\n" + rows), text_column="text", label_column="label")
    assert report["ok"] and report["rows"] == 43
    found = warnings_by_code(report)
    assert found["too_few_rows"]["labels"] == ["tiny"] and "fewer than 2 rows" in found["too_few_rows"]["message"]
    assert found["imbalance"]["labels"] == ["big", "tiny"] and "(40:1)" in found["imbalance"]["message"]


def test_a_clean_balanced_file_has_no_warnings(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\n" + "".join(f"t{i}\t{i % 3}\n" for i in range(30)))
    assert inspect_file(path, text_column="text", label_column="label")["warnings"] == []
