"""`sce samples DIR` (the shipped sample files, never overwritten silently) and `sce completion SHELL`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from sce.cli.samples import SAMPLES

SHIPPED = resources.files("sce") / "samples"
SCE = shutil.which("sce", path=str(Path(sys.executable).parent)) or shutil.which("sce")
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR", "_SCE_COMPLETE")}



def installed() -> str:
    if SCE is None:
        if os.environ.get("CI"):
            pytest.fail("sce is not installed: CI tests the installed command (pip install '.[test]')")
        pytest.skip("sce is not installed (pip install .)")
    return SCE


# --- sce samples -----------------------------------------------------------------------------------


def test_every_shipped_sample_is_listed_and_every_listed_one_ships():
    shipped = {entry.name for entry in SHIPPED.iterdir() if entry.is_file() and not entry.name.startswith(".")}
    assert shipped == set(SAMPLES)


def test_samples_are_copied_byte_for_byte_and_listed(sce, tmp_path):
    result = sce("samples", str(tmp_path))
    assert result.exit_code == 0, result.output
    for name in SAMPLES:
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name
        assert name in result.stdout
    assert result.stdout.splitlines()[-1] == f"{len(SAMPLES)} sample files in {tmp_path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SAMPLES)  # no temporary file left


def test_a_missing_folder_is_created_with_its_parents(sce, tmp_path):
    result = sce("samples", str(tmp_path / "a" / "b"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "b" / "batch.csv").is_file()


def test_an_existing_file_of_the_same_name_is_refused_in_one_line_and_nothing_is_written(sce, tmp_path):
    (tmp_path / "batch.csv").write_text("my own data\n")
    result = sce("samples", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == (
        f"sce: error: {tmp_path / 'batch.csv'} already exists; use --force to overwrite, "
        "or copy the samples into another DIR\n"
    )
    assert (tmp_path / "batch.csv").read_text() == "my own data\n"
    assert [p.name for p in tmp_path.iterdir()] == ["batch.csv"]


def test_several_existing_files_are_counted(sce, tmp_path):
    assert sce("samples", str(tmp_path)).exit_code == 0
    result = sce("samples", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"sce: error: {tmp_path / 'batch.csv'} and {len(SAMPLES) - 1} more exist; ")
    assert result.stderr.count("\n") == 1


def test_force_overwrites_and_replaces_a_link_instead_of_writing_through_it(sce, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    folder = tmp_path / "here"
    folder.mkdir()
    (folder / "batch.csv").symlink_to(precious)
    (folder / "batch.tsv").write_text("old\n")
    result = sce("samples", str(folder), "--force")
    assert result.exit_code == 0, result.output
    assert precious.read_text() == "keep me\n"
    assert not (folder / "batch.csv").is_symlink()
    assert (folder / "batch.csv").read_bytes() == (SHIPPED / "batch.csv").read_bytes()
    assert (folder / "batch.tsv").read_bytes() == (SHIPPED / "batch.tsv").read_bytes()


def test_a_dangling_link_counts_as_an_existing_file(sce, tmp_path):
    (tmp_path / "seed_logits.txt").symlink_to(tmp_path / "nowhere")
    assert sce("samples", str(tmp_path)).exit_code == 2
    assert not (tmp_path / "nowhere").exists()


def test_a_file_where_the_folder_should_be_is_refused(sce, tmp_path):
    (tmp_path / "x").write_text("")
    result = sce("samples", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr == f"sce: error: {tmp_path / 'x'}: not a folder; name a folder to copy the samples into\n"


def test_an_empty_folder_name_is_refused_not_read_as_the_current_folder(sce, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = sce("samples", "")
    assert result.exit_code == 2
    assert result.stderr == "sce: error: DIR: the folder name is empty; name a folder, or . for the current one\n"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(sce, tmp_path, monkeypatch):
    class FullDisk:
        def __init__(self, descriptor: int, mode: str) -> None:
            os.close(descriptor)

        def __enter__(self):
            return self

        def __exit__(self, *exception) -> None:
            return None

        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", FullDisk)
    result = sce("samples", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr == f"sce: error: {tmp_path / 'batch.csv'} No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_copied_files_follow_the_umask(sce, tmp_path):
    result = sce("samples", str(tmp_path))
    assert result.exit_code == 0
    mask = os.umask(0o22)
    os.umask(mask)
    assert (tmp_path / "batch.csv").stat().st_mode & 0o777 == 0o666 & ~mask


def test_from_an_empty_folder_the_installed_sce_scores_a_sample(tmp_path):
    sce_path = installed()
    done = subprocess.run(
        f"'{sce_path}' samples ./s > /dev/null && '{sce_path}' batch s/batch.csv --quiet",
        shell=True, cwd=tmp_path, capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "z0,z1,z2,label,p_z0,p_z1,p_z2,loss,grad_z0,grad_z1,grad_z2"
    assert len(done.stdout.splitlines()) == 5


def test_the_samples_implementations_pass_sce_test_as_their_docstrings_run_them(sce, tmp_path):
    installed()
    assert sce("samples", str(tmp_path)).exit_code == 0
    done = subprocess.run(
        [SCE, "test", "implementation_row.py:row_loss_and_gradient", "--convention", "row", "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, env=ENV, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["passed"] is True


# --- sce completion --------------------------------------------------------------------------------


def bash_completions(words: str) -> list[str]:
    """What bash offers at <TAB> after ``words`` with the script of ``sce completion bash`` loaded."""
    sce_path = installed()
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to test its completion")
    script = subprocess.run([sce_path, "completion", "bash"], capture_output=True, text=True, env=ENV, check=True)
    program = (
        f"{script.stdout}\nCOMP_WORDS=({words}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n"
        '_sce_completion sce; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**ENV, "PATH": os.pathsep.join([str(Path(sce_path).parent), ENV.get("PATH", "")])}
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, env=env, check=True)
    return done.stdout.split()


def test_bash_completes_a_command():
    assert bash_completions("sce gr") == ["grad"]
    assert bash_completions("sce c") == ["check", "completion"]


def test_bash_completes_an_option_and_a_choice():
    assert "--label" in bash_completions("sce grad 2 3 4 --la")
    assert bash_completions("sce grad --sm") == ["--smoothing", "--smoothing-style"]  # as docs/commands/completion.md says
    assert bash_completions("sce completion f") == ["fish"]


def completions_asked(shell: str, words: str, **env: str) -> str:
    """What the installed sce answers when zsh's or fish's script asks (as the script would at <TAB>)."""
    sce_path = installed()
    asking = {**ENV, "_SCE_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": words, **env}
    return subprocess.run([sce_path], capture_output=True, text=True, env=asking, check=True).stdout


def test_zsh_and_fish_are_answered_too():
    assert '"batch":' in completions_asked("zsh", "sce b")
    fish = completions_asked("fish", "sce c", _TYPER_COMPLETE_FISH_ACTION="get-args")
    assert [line.split("\t")[0] for line in fish.splitlines()] == ["check", "completion"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_its_script(sce, shell):
    result = sce("completion", shell)
    assert result.exit_code == 0, result.output
    assert "_SCE_COMPLETE" in result.stdout
    assert f"complete_{shell}" in result.stdout


def test_an_unknown_shell_is_one_line_naming_the_shells(sce):
    result = sce("completion", "ksh")
    assert result.exit_code == 2
    assert result.stderr == (
        "sce completion: error: Invalid value for 'SHELL': 'ksh' is not one of 'bash', 'zsh', 'fish'. "
        "(see 'sce completion --help')\n"
    )


def test_grad_loads_neither_completion_nor_samples(tmp_path):
    entry = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: open({str(tmp_path / 'm.json')!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['sce', 'grad', '2', '3', '4', '-l', '1']\nfrom sce.cli import main\nmain()\n"
    )
    done = subprocess.run([sys.executable, "-c", entry], capture_output=True, text=True, env=ENV, check=False)
    assert done.returncode == 0, done.stderr
    modules = json.loads((tmp_path / "m.json").read_text())
    assert "sce.cli.completion" not in modules and "sce.cli.samples" not in modules
