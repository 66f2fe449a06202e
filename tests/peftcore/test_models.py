import os

import pytest

from peftcore.models import BUNDLED_MODEL_ID, ModelRefError, bundled_model_path, resolve_model


def model_folder(path, weights="model.safetensors"):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "bert"}')
    if weights:
        (path / weights).write_bytes(b"")
    return path


def test_bundled_model():
    path = resolve_model(BUNDLED_MODEL_ID, model_root=None)
    assert path == bundled_model_path()
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_local_model_under_the_root(tmp_path):
    folder = model_folder(tmp_path / "team" / "my-model")
    assert resolve_model("local:team/my-model", model_root=tmp_path) == folder.resolve()


def test_symlink_inside_the_root_is_fine(tmp_path):
    folder = model_folder(tmp_path / "real")
    os.symlink(folder, tmp_path / "alias")
    assert resolve_model("local:alias", model_root=tmp_path) == folder.resolve()


@pytest.mark.parametrize(
    "ref, message",
    [
        ("local:../x", "must not contain '..'"),
        ("local:a/../../x", "must not contain '..'"),
        ("local:/etc", "must be relative"),
        ("local:C:\\models", "must be relative"),
        ("local:", "needs a folder name"),
        ("local:missing", "does not exist"),
    ],
)
def test_local_refs_refused(tmp_path, ref, message):
    with pytest.raises(ModelRefError, match=message):
        resolve_model(ref, model_root=tmp_path)


def test_symlink_escaping_the_root_is_refused(tmp_path):
    outside = model_folder(tmp_path / "outside")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "escape")
    with pytest.raises(ModelRefError, match="points outside the model folder"):
        resolve_model("local:escape", model_root=root)


def test_local_needs_a_root():
    with pytest.raises(ModelRefError, match="no model root"):
        resolve_model("local:x", model_root=None)


def test_pickled_weights_only_are_refused(tmp_path):
    model_folder(tmp_path / "old", weights="pytorch_model.bin")
    with pytest.raises(ModelRefError, match="safetensors weights only"):
        resolve_model("local:old", model_root=tmp_path)


def test_folder_without_config_or_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelRefError, match="no config.json"):
        resolve_model("local:empty", model_root=tmp_path)
    model_folder(tmp_path / "noweights", weights=None)
    with pytest.raises(ModelRefError, match="no \\*.safetensors weights"):
        resolve_model("local:noweights", model_root=tmp_path)


@pytest.mark.parametrize(
    "ref",
    [
        "gpt2",
        "owner/na me",
        "owner//name",
        "a--b/c",
        "owner/name/extra",
        "../etc/passwd",
        "/name",
        "owner/",
        "https://huggingface.co/owner/name",
        "owner/name;rm",
        "-owner/name",
        "owner/" + "x" * 97,
        "",
        "owner/..x",
    ],
)
def test_malformed_hub_ids_are_refused_before_any_download(ref):
    with pytest.raises(ModelRefError):
        resolve_model(ref, model_root=None)


def test_bad_revision_is_refused_before_any_download():
    with pytest.raises(ModelRefError, match="not a valid revision"):
        resolve_model("owner/name", model_root=None, revision="main; rm -rf /")
