"""What is wrong with a template, said where it is and in a configurer's words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from touchwave.errors import UserError


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) to the part of the template a problem is about."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "".join("/" + p for p in escaped) or "/"


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class TemplateInvalid(UserError):
    """A template that cannot be compiled, with every problem found in it."""

    def __init__(self, problems: Iterable[Problem], source: str | None = None) -> None:
        self.problems: Sequence[Problem] = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source else ""
        lines = [f"{prefix}{p}" for p in self.problems]
        super().__init__("\n".join(lines))
