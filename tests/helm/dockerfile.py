"""A small Dockerfile reader: stages, their instructions, and build arguments resolved the way
`docker build` resolves them without --build-arg. Enough for deploy/Dockerfile's checks and for
the run plan (the image's ENV is part of a container's environment)."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
from dataclasses import dataclass, field


@dataclass
class Instruction:
    keyword: str
    text: str
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(parse_assignments(instruction.text))
        return values


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with their continuation lines joined and comments dropped."""
    lines: list[tuple[int, str]] = []
    current, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comments inside a continued instruction are ignored too
        if not current:
            start = number
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        lines.append((start, current))
        current = ""
    if current:
        lines.append((start, current))
    return lines


def parse_assignments(text: str) -> dict[str, str]:
    """`ENV`/`ARG` bodies: `a=1 b="two words"`, or the legacy `KEY value` form."""
    parts = shlex.split(text)
    if parts and "=" not in parts[0]:
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) if "=" in part else (part, "") for part in parts)


def substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)",
        lambda m: args.get(m.group(1) or m.group(3), m.group(2) or ""),
        text,
    )


def parse(path: pathlib.Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical_lines(path.read_text()):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = substitute(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=image, name=name, line=line))
        elif not stages:
            if keyword == "ARG":
                global_args.update(parse_assignments(rest))
        else:
            stages[-1].instructions.append(Instruction(keyword, rest, line))
    return Dockerfile(global_args=global_args, stages=stages)


def exec_form(text: str) -> list[str] | None:
    """`["a", "b"]` as a list; None for the shell form."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def image_tag(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference."""
    reference, _, digest = image.partition("@")
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, _, tag = reference.rpartition(":")
        return repository, tag, digest or None
    return reference, None, digest or None
