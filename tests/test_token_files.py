"""Issue 28, point 13: tokens given as ``--admin-token``/``--viewer-token`` show in ``ps`` to
every user of the machine; ``--admin-token-file``/``--viewer-token-file`` read them from a file,
and ``--help`` says the environment variable or the file is the safe way."""

from __future__ import annotations

from pathlib import Path

import pytest

from facemetric.cli import build_parser, main
from facemetric.cli.serve import settings_from_args


def test_tokens_from_files(tmp_path: Path) -> None:
    admin, viewer = tmp_path / "admin", tmp_path / "viewer"
    admin.write_text("s3cret-admin\n")
    viewer.write_text("  s3cret-viewer  \n\n")
    args = build_parser().parse_args(
        ["serve", "--admin-token-file", str(admin), "--viewer-token-file", str(viewer)]
    )
    settings = settings_from_args(args)
    assert settings.admin_token.get_secret_value() == "s3cret-admin"
    assert settings.viewer_token.get_secret_value() == "s3cret-viewer"


@pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
def test_an_unusable_token_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    assert main(["serve", "--port", "0", "--admin-token-file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("facemetric: error: --admin-token-file") and str(path) in err
    assert len(err.splitlines()) == 1


def test_help_says_the_safe_way(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--admin-token-file", "--viewer-token-file"):
        assert flag in text
    assert "shows in ps" in text and "$FACEMETRIC_ADMIN_TOKEN or use --admin-token-file" in text
    with pytest.raises(SystemExit):  # one or the other
        build_parser().parse_args(["serve", "--admin-token", "a", "--admin-token-file", "f"])
