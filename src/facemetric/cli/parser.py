"""The console script's argument parser: every mistake in what was typed is one line, with a
"did you mean" for a mistyped command or option and the subcommand whose usage to read."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)'")


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line ``PROG: error: ...`` (exit 2).

    Subcommand parsers are of this class too (``add_subparsers`` makes them of the parent's
    type), so a wrong option after ``gallery list`` is reported by ``gallery list`` itself,
    not by the top level, which would only know the first word.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = super().parse_known_args(args, namespace)
        if extras and self._is_subcommand():
            self.error(f"unrecognized arguments: {' '.join(extras)}{self._suggest(extras)}")
        return ns, extras

    def _is_subcommand(self) -> bool:
        return " " in self.prog and not any(
            isinstance(a, argparse._SubParsersAction) for a in self._actions
        )

    def _suggest(self, extras: list[str]) -> str:
        options = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.split("=")[0], options, n=1, cutoff=0.6)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""

    def _suggest_choice(self, message: str) -> str:
        match = _INVALID_CHOICE.search(message)
        if not match:
            return ""
        choices: list[str] = []
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                choices += list(action.choices)
            elif action.choices is not None:
                choices += [str(c) for c in action.choices]
        close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def error(self, message: str) -> NoReturn:
        hint = self._suggest_choice(message)
        if hint:  # the list of every choice is long: the suggestion is enough
            message = re.sub(r" \(choose from [^)]*\)", "", message) + hint
        self.exit(2, f"{self.prog}: error: {message}; see: {self.prog} --help\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
