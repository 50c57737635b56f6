import subprocess

from bench.provenance import GENERATED, git_commit


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                   capture_output=True)


def test_generated_outputs_leave_the_commit_clean_and_code_changes_do_not(tmp_path):
    for path in [*GENERATED, "bench/engine.py", "docs/protocol.md"]:
        file = tmp_path / path / "board.md" if path == "leaderboards" else tmp_path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("v1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "v1")
    clean = git_commit(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")

    for path in GENERATED:
        file = tmp_path / path / "board.md" if path == "leaderboards" else tmp_path / path
        file.write_text("rewritten by bench report --readme\n")
    assert git_commit(tmp_path) == clean

    (tmp_path / "docs/protocol.md").write_text("edited by hand\n")
    assert git_commit(tmp_path) == clean + "-dirty"
