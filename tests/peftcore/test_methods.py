import pytest
import torch

from peftcore.methods import Method, UnknownMethodError, all_methods, get_method, methods_as_json, register
from peftcore.methods._common import MethodBuildError
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import load_model

ADAPTER_MARKERS = {"lora": (".lora_A.", ".lora_B."), "ia3": (".ia3_l.",)}


def test_registry_lists_methods_in_registration_order():
    assert [m.name for m in all_methods()][:2] == ["lora", "ia3"]
    lora, ia3 = get_method("lora"), get_method("ia3")
    assert (lora.family, lora.recommended_learning_rate, lora.can_merge) == ("reparameterised", 1e-3, True)
    assert (ia3.family, ia3.recommended_learning_rate, ia3.can_merge) == ("additive", 1e-2, True)
    assert [p.name for p in lora.params] == [
        "r",
        "lora_alpha",
        "lora_dropout",
        "use_dora",
        "use_rslora",
        "init",
        "use_kasa",
        "velora",
        "bd_blocks",
        "activated",
        "ba_consistency",
        "ba_diversity",
        "ba_svd",
        "placement",
        "layers",
        "target_modules",
    ]
    assert [p.name for p in ia3.params] == ["target_modules", "feedforward_modules"]


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(UnknownMethodError, match="unknown method 'dora'; known methods: lora, ia3, "):
        get_method("dora")
    assert issubclass(UnknownMethodError, ValueError)


def test_registering_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("lora"))


def test_methods_as_json_has_everything_but_build():
    rows = methods_as_json()
    assert rows[0]["name"] == "lora" and "build" not in rows[0]
    assert set(rows[0]) == {
        "name",
        "label",
        "family",
        "description",
        "paper",
        "params",
        "tasks",
        "recommended_learning_rate",
        "can_merge",
        "acts_on",
        "how",
        "how_label",
        "architectures",
        "refusals",
        "saved_as",
    }
    assert rows[0]["acts_on"] == ["attention"] and rows[0]["how"] == "reparameterises"
    assert rows[0]["params"][0]["name"] == "r" and rows[0]["tasks"] == [
        "text-classification",
        "sft",
        "seq2seq",
        "preference",
    ]


def test_every_method_is_fully_described():
    for method in all_methods():
        assert isinstance(method, Method)
        assert method.description and method.paper and method.tasks and method.label


@pytest.fixture
def loaded(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    return load_model(tiny_bert, ["neg", "pos"], tokenizer.pad_token_id)


@pytest.mark.parametrize("method", list(ADAPTER_MARKERS))
def test_exactly_the_method_weights_and_the_head_are_trainable(loaded, method):
    model, new_modules = loaded
    assert new_modules == ["classifier"]
    defaults = {p.name: p.default for p in get_method(method).params}
    peft_model = get_method(method).build(model, defaults, "text-classification", new_modules=new_modules)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    adapter = {n for n in trainable if any(marker in n for marker in ADAPTER_MARKERS[method])}
    head = {n for n in trainable if ".classifier.modules_to_save." in n}
    assert adapter and head == {
        "base_model.model.classifier.modules_to_save.default.weight",
        "base_model.model.classifier.modules_to_save.default.bias",
    }
    assert trainable == adapter | head
    every_adapter_weight = {
        n for n, _ in peft_model.named_parameters() if any(marker in n for marker in ADAPTER_MARKERS[method])
    }
    assert every_adapter_weight == adapter


def test_target_modules_are_parsed(loaded):
    model, new_modules = loaded
    params = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "target_modules": "query, key",
        "placement": "usual",
        "layers": "all",
    }
    peft_model = get_method("lora").build(model, params, "text-classification", new_modules=new_modules)
    targeted = {n.split(".lora_A.")[0].rsplit(".", 1)[1] for n, _ in peft_model.named_parameters() if ".lora_A." in n}
    assert targeted == {"query", "key"}


@pytest.mark.parametrize(
    "method, params, message",
    [
        (
            "lora",
            {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "nonexistent"},
            "LoRA cannot be applied to this model",
        ),
        (
            "lora",
            {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "query; drop"},
            "is not a module name",
        ),
        (
            "ia3",
            {"target_modules": "key", "feedforward_modules": "output.dense"},
            "feedforward_modules must also be listed in target_modules",
        ),
        (
            "lora",
            {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "use_kasa": True, "use_dora": True},
            "DoRA and KaSA cannot be combined",
        ),
    ],
)
def test_params_that_do_not_fit_the_model(loaded, method, params, message):
    model, new_modules = loaded
    with pytest.raises(MethodBuildError, match=message):
        get_method(method).build(model, params, "text-classification", new_modules=new_modules)


def test_kasa_learns_singular_values_and_adds_its_regularisers_to_the_loss(loaded, tiny_bert):
    model, new_modules = loaded
    lora = get_method("lora")
    params = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "use_kasa": True}
    kasa = lora.build(model, params, "text-classification", new_modules=new_modules)
    diagonals = [n for n, p in kasa.named_parameters() if ".lora_diag." in n and p.requires_grad]
    assert len(diagonals) == 4  # query and value in both blocks
    penalty = lora.extra_loss(kasa)
    assert penalty.requires_grad and penalty.item() > 0  # the orthogonality term of random A and B
    plain_model, _ = load_model(tiny_bert, ["neg", "pos"], 0)
    plain = lora.build(plain_model, dict(params, use_kasa=False), "text-classification", new_modules=new_modules)
    assert lora.extra_loss(plain) == 0.0


def test_ia3_targets_without_feedforward_keep_the_usual_feedforward_layers(loaded):
    model, new_modules = loaded
    params = {"target_modules": "value, output.dense", "feedforward_modules": None}
    peft_model = get_method("ia3").build(model, params, "text-classification", new_modules=new_modules)
    assert peft_model.peft_config["default"].feedforward_modules == {"output.dense"}


def test_methods_are_discovered_from_their_modules():
    import importlib
    import pkgutil

    import peftcore.methods as package

    modules = [info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")]
    registered = [importlib.import_module(f"peftcore.methods.{name}").METHOD for name in modules]
    assert sorted(m.name for m in registered) == sorted(m.name for m in all_methods())


@pytest.mark.parametrize(
    "placement, layers, expected",
    [
        (
            "attention",
            "last 1",
            {
                "encoder.layer.1.attention.self.query",
                "encoder.layer.1.attention.self.key",
                "encoder.layer.1.attention.self.value",
                "encoder.layer.1.attention.output.dense",
            },
        ),
        ("ffn", "0", {"encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"}),
        ("usual", "0-0", {"encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value"}),
    ],
)
def test_placement_and_layers_choose_the_layers(loaded, placement, layers, expected):
    model, new_modules = loaded
    params = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "placement": placement,
        "layers": layers,
        "target_modules": None,
    }
    peft_model = get_method("lora").build(model, params, "text-classification", new_modules=new_modules)
    targeted = {
        n.split(".lora_A.")[0].removeprefix("base_model.model.bert.")
        for n, _ in peft_model.named_parameters()
        if ".lora_A." in n
    }
    assert targeted == expected


@pytest.mark.parametrize(
    "layers, message", [("last 9", "has 2"), ("2-3", "outside blocks 0-1"), ("some", "not understood")]
)
def test_bad_layer_ranges_are_explained(loaded, layers, message):
    model, new_modules = loaded
    params = {
        "r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "placement": "ffn",
        "layers": layers,
        "target_modules": None,
    }
    with pytest.raises(MethodBuildError, match=message):
        get_method("lora").build(model, params, "text-classification", new_modules=new_modules)


def test_peft_registration_still_needs_a_member_of_its_closed_peft_type_enum():
    """Why peftcore's own methods load through peftcore.load_adapter and not PeftModel.from_pretrained:
    register_peft_method only accepts names peft's PeftType enum already has. When a peft release opens it,
    this fails and the own methods can be registered (docs/methods.md, "Saving and loading")."""
    from peft.utils import register_peft_method

    from peftcore.methods import all_methods

    own = [m.name for m in all_methods() if m.saved_as != "peft"]
    assert {"red", "bitfit", "adalink", "bottleneck", "s2ft"} <= set(own)
    for name in own:
        with pytest.raises(ValueError, match="Unknown PEFT type"):
            register_peft_method(name=name, config_cls=object, model_cls=object)
