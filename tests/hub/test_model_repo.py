"""dit_demo.hub.model_repo's spec: the gallery request and the Reproduce command, without building anything."""

from __future__ import annotations

import shlex

import pytest

from dit_demo.errors import DemoError
from dit_demo.hub.io import check_repo_id
from dit_demo.hub.model_repo import ModelRepoSpec

ID2LABEL = {i: f"class {i}" for i in range(10)}


def test_request_spreads_labels_and_expands_one_start_seed():
    labels, seeds = ModelRepoSpec("a/b").request(ID2LABEL)
    assert len(labels) == 4 == len(set(labels)) and seeds == [0, 1, 2, 3]
    assert ModelRepoSpec("a/b", labels=["three", "seven"], seeds=[7]).request(ID2LABEL) == (["three", "seven"], [7, 8])
    with pytest.raises(DemoError, match="2 seeds for 3 labels"):
        ModelRepoSpec("a/b", labels=[1, 2, 3], seeds=[4, 5]).request(ID2LABEL)


def test_reproduce_command_round_trips_through_the_parser():
    from dit_demo.cli.publish.push_model import build_parser

    spec = ModelRepoSpec("alice/x", model="tiny-random", recipe="int8-a8", keep=["adaln"], exclude=["*.ff.*"])
    spec.source_url = "https://huggingface.co/spaces/alice/demo"
    command = spec.reproduce_command(["golden retriever", "tench"], [7, 8])
    argv = shlex.split(command)
    # `python -m dit_demo` works in a clone of the checkout and in a Space folder alike (both hold dit_demo/)
    assert argv[:4] == ["python", "-m", "dit_demo", "push-model"] and argv[-1] == "--push"
    args = build_parser().parse_args(argv[4:])
    assert args.source_url == "https://huggingface.co/spaces/alice/demo"
    assert (args.model, args.recipe, args.repo_id, args.keep, args.exclude) == (
        "tiny-random",
        "int8-a8",
        "alice/x",
        ["adaln"],
        ["*.ff.*"],
    )
    assert args.labels == ["golden retriever", "tench"] and args.seeds == [7, 8] and args.push


def test_a_local_folder_is_published_by_its_name_only(tmp_path):
    from dit_demo.engine.model.resolver import resolve_source

    folder = tmp_path / "my-dit"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "DiTPipeline"}')
    assert resolve_source(str(folder)).name == "my-dit"
    assert resolve_source(f"{folder}/").name == "my-dit"
    command = ModelRepoSpec("alice/x", model=str(folder)).reproduce_command(["1"], [0])
    assert str(tmp_path) not in command and "--model my-dit" in command
    assert resolve_source("embedded").name == "embedded"


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "bad id/x"])
def test_repo_ids_are_checked_before_any_work(repo_id):
    with pytest.raises(DemoError, match="repo"):
        check_repo_id(repo_id)
