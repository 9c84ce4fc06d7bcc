"""The command line as a user meets it: help, version, and one-line errors."""

import json
import re

import pytest
import torch

from edgecls import __version__

from .conftest import CLASSES, assert_one_line_error, copy_subset, run_cli


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"edgecls {__version__}"


def registered_commands() -> list[str]:
    """The commands the app registers, so a new command is covered without editing this file."""
    from edgecls.cli import app

    return [c.name for c in app.registered_commands]


def named(text: str, name: str) -> bool:
    """``name`` appears in ``text`` as a whole option or argument name (``--data`` is not in ``--data-dir``)."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", registered_commands())
def test_every_command_has_help(command):
    """`edgecls COMMAND --help` names the command, its docstring and every argument and option it takes."""
    import typer.main

    from edgecls.cli import app

    click_command = typer.main.get_command(app).commands[command]
    result = run_cli(command, "--help", env={"COLUMNS": "200"})  # at 80, rich cuts `--schedule,--scheduler`
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    text = result.stdout
    assert re.search(rf"Usage: .*edgecls {command} ", text), text
    summary = click_command.help.strip().split("\n\n")[0]
    assert " ".join(summary.split()) in " ".join(text.split()), summary
    names = [name for p in click_command.params for name in (p.opts + p.secondary_opts)]
    assert names, f"{command} takes no arguments or options"
    for name in names + ["--help"]:
        assert named(text, name), f"{command} --help does not name {name}:\n{text}"


def test_top_level_help_lists_every_command():
    """Each command heads a line of its own in `edgecls --help` (its name in prose would not count)."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for command in registered_commands():
        assert re.search(rf"^\W*{command}\s", result.stdout, re.M), f"{command}:\n{result.stdout}"


def test_train_help_documents_the_contract():
    text = run_cli("train", "--help").stdout
    for flag in ("--model", "--data", "--epochs", "--batch-size", "--device", "--out", "--seed", "--limit-train",
                 "--resume", "--patience", "--ema", "--tta", "--precision", "--compile"):
        assert flag in text, flag


def test_models_lists_params_and_flops():
    result = run_cli("models", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["resnet20"]["params"] == 269722  # the 0.27M of He et al., option A
    assert rows["resnet18"]["params"] > 11e6 and rows["vgg16"]["flops"] > rows["resnet20"]["flops"]


def test_missing_data_path(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "does not exist")
    assert not (tmp_path / "o").exists()


def test_data_path_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert_one_line_error(run_cli("train", "--data", str(f)), "is not a folder")


def test_empty_data_folder(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    assert_one_line_error(run_cli("train", "--data", str(tmp_path), "--cache-dir", str(tmp_path / "c")),
                          "no class folders")


def test_corrupt_image_in_training_data_is_skipped_and_named(tmp_path):
    root = copy_subset(tmp_path / "d", 2, 1, CLASSES[:2])
    (root / "train" / "airplane" / "zz.png").write_bytes(b"not a png")
    result = run_cli("train", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
                     "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 file(s) that are not readable images: train/airplane/zz.png (not an image Pillow can read)" \
        in result.stdout


def test_a_class_with_no_readable_image_is_a_one_line_error(tmp_path):
    root = copy_subset(tmp_path / "d", 2, 1, CLASSES[:2])
    for f in (root / "train" / "airplane").iterdir():
        f.write_bytes(b"")
    result = run_cli("train", "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "no readable image", "airplane")


BAD_OPTIONS = [
    (["--model", "resnet7"], "unknown model"),
    (["--epochs", "0"], "--epochs"),
    (["--flip", "sideways"], "--flip"),
    (["--device", "tpu"], "--device"),
    (["--precision", "fp8"], "--precision"),
]
if not torch.cuda.is_available():
    BAD_OPTIONS.append((["--device", "cuda"], "no CUDA GPU"))


@pytest.mark.parametrize("args,fragment", BAD_OPTIONS)
def test_bad_options(tmp_path, args, fragment, tiny_folder):
    result = run_cli("train", "--data", str(tiny_folder), "--cache-dir", str(tmp_path / "c"),
                     "--out", str(tmp_path / "o"), *args)
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04garbage"])
def test_eval_rejects_files_that_are_not_checkpoints(tmp_path, content):
    """Empty, pickle-less and broken-zip files all fail torch.load; the user sees one line naming the file."""
    f = tmp_path / "model.pt"
    f.write_bytes(content)
    result = run_cli("eval", str(f))
    assert_one_line_error(result, f"error: {f} is not a readable edgecls checkpoint (")
    assert result.stdout == ""


def test_eval_rejects_a_plain_torch_file(tmp_path):
    f = tmp_path / "tensor.pt"
    torch.save({"weights": torch.zeros(3)}, f)
    assert_one_line_error(run_cli("eval", str(f)), "not an edgecls checkpoint")


def test_eval_missing_checkpoint(tmp_path):
    assert_one_line_error(run_cli("eval", str(tmp_path / "none.pt")), "does not exist")
