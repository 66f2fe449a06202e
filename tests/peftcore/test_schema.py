import pytest

from peftcore.methods import all_methods
from peftcore.schema import Param, schema_as_json, validate_params
from peftcore.training_params import TRAINING_PARAMS

SCHEMA = (
    Param("epochs", "int", 3, "how many passes", min=1, max=100),
    Param("lr", "float", None, "step size", min=1e-7, max=1.0, optional=True),
    Param("flag", "bool", False, "a switch"),
    Param("size", "choice", 8, "a choice", choices=(4, 8, 16)),
    Param("modules", "str", None, "names", optional=True),
)


def test_defaults_fill_missing_keys():
    clean, errors = validate_params(SCHEMA, None)
    assert errors == {}
    assert clean == {"epochs": 3, "lr": None, "flag": False, "size": 8, "modules": None}


def test_form_strings_are_coerced():
    clean, errors = validate_params(
        SCHEMA, {"epochs": " 5 ", "lr": "0.001", "flag": "on", "size": "16", "modules": " query, value "}
    )
    assert errors == {}
    assert clean == {"epochs": 5, "lr": 0.001, "flag": True, "size": 16, "modules": "query, value"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("off", False),
        ("0", False),
        (True, True),
        (0, False),
    ],
)
def test_bool_values(value, expected):
    assert validate_params(SCHEMA, {"flag": value})[0]["flag"] is expected


def test_json_numbers_are_accepted():
    clean, errors = validate_params(SCHEMA, {"epochs": 7, "lr": 1, "size": 4})
    assert errors == {} and clean["epochs"] == 7 and clean["lr"] == 1.0 and isinstance(clean["lr"], float)


def test_optional_empty_becomes_none_and_required_empty_uses_default():
    clean, errors = validate_params(SCHEMA, {"lr": "", "modules": "  ", "epochs": ""})
    assert errors == {}
    assert clean["lr"] is None and clean["modules"] is None and clean["epochs"] == 3


def test_unknown_key_lists_the_expected_ones():
    _, errors = validate_params(SCHEMA, {"x": 1})
    assert errors == {"x": "unknown parameter 'x'; expected one of: epochs, lr, flag, size, modules"}


def test_out_of_bounds_names_the_bounds():
    _, errors = validate_params(SCHEMA, {"epochs": 500, "lr": "2"})
    assert errors["epochs"] == "must be between 1 and 100 (got 500)"
    assert errors["lr"] == "must be between 1e-07 and 1 (got 2)"


def test_one_sided_bounds():
    schema = (Param("rows", "int", None, "limit", min=1, optional=True),)
    assert validate_params(schema, {"rows": 0})[1] == {"rows": "must be at least 1 (got 0)"}
    assert validate_params(schema, {"rows": 10**9})[1] == {}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("lr", "abc", "must be a number (got 'abc')"),
        ("lr", "nan", "must be a finite number (got 'nan')"),
        ("lr", True, "must be a number (got true)"),
        ("epochs", "2.5", "must be a whole number (got '2.5')"),
        ("epochs", 2.5, "must be a whole number (got 2.5)"),
        ("epochs", "three", "must be a whole number (got 'three')"),
        ("flag", "maybe", "must be true or false (got 'maybe')"),
        ("size", 5, "must be one of: 4, 8, 16 (got 5)"),
        ("modules", 3, "must be text (got 3)"),
    ],
)
def test_wrong_types(name, value, message):
    assert validate_params(SCHEMA, {name: value})[1] == {name: message}


def test_whole_number_strings():
    assert validate_params(SCHEMA, {"epochs": "4.0"})[0]["epochs"] == 4


def test_schema_as_json():
    rows = schema_as_json(SCHEMA)
    assert [r["name"] for r in rows] == ["epochs", "lr", "flag", "size", "modules"]
    assert rows[0] == {
        "name": "epochs",
        "type": "int",
        "default": 3,
        "help": "how many passes",
        "label": "Epochs",
        "min": 1,
        "max": 100,
        "choices": [],
        "optional": False,
    }
    assert rows[3]["choices"] == [4, 8, 16]


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError):
        Param("x", "number", 1, "")
    with pytest.raises(ValueError):
        Param("x", "choice", 1, "")


def test_training_params_match_the_interface():
    by_name = {p.name: p for p in TRAINING_PARAMS}
    assert list(by_name) == [
        "epochs",
        "learning_rate",
        "head_learning_rate",
        "patience",
        "batch_size",
        "max_length",
        "eval_fraction",
        "max_rows",
        "seed",
        "warmup_ratio",
        "answer_logits_only",
        "group_by_length",
        "gradient_checkpointing",
        "baseline_eval",
        "probe_head",
        "density_loss",
        "measure_density",
        "prune_ranks",
        "prune_heads",
        "prune_channels",
        "prune_after",
        "optimizer",
        "galore_rank",
        "galore_scale",
        "galore_update_gap",
        "preference_loss",
        "dpo_beta",
        "precision",
        "quantize",
        "weight_decay",
    ]
    assert by_name["answer_logits_only"].default is True and by_name["gradient_checkpointing"].default is False
    assert (by_name["precision"].default, by_name["precision"].choices) == ("auto", ("auto", "fp32", "bf16"))
    assert (by_name["quantize"].default, by_name["quantize"].choices) == ("none", ("none", "4bit"))
    assert by_name["baseline_eval"].default is True
    assert by_name["probe_head"].default is False  # measured worse on SST-2 (docs/benchmarks.md)
    assert by_name["density_loss"].default == 0.0 and by_name["measure_density"].default is False  # DEFT: opt-in
    assert (by_name["epochs"].default, by_name["epochs"].min, by_name["epochs"].max) == (None, 1, 100)
    # left empty, these are chosen from the data (peftcore/defaults.py), with the reason
    for name in ("epochs", "learning_rate", "head_learning_rate", "batch_size", "max_length", "eval_fraction"):
        assert by_name[name].optional and by_name[name].default is None, name
    assert (by_name["patience"].default, by_name["patience"].min) == (3, 0)
    assert by_name["max_rows"].optional and by_name["max_rows"].min == 1
    assert all(p.help and p.label for p in TRAINING_PARAMS)


@pytest.mark.parametrize(
    "schema", [TRAINING_PARAMS] + [m.params for m in all_methods()], ids=["training"] + [m.name for m in all_methods()]
)
def test_every_declared_default_is_valid(schema):
    clean, errors = validate_params(schema, {p.name: p.default for p in schema})
    assert errors == {}
    assert clean == {p.name: p.default for p in schema}
