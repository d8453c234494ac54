"""Loading journeys from YAML, with errors that name the file, line and field.

The YAML is composed once into a node tree (which keeps line numbers) and once into plain
data; pydantic validates the data, and each error location (``steps.2.template``) is walked
back through the node tree to the line it came from.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from huitouke.errors import InputError
from huitouke.journeys.model import Journey

_HINT = re.compile(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)*): ")

__all__ = ["builtin_journeys", "load_journey_file", "load_journey_text", "load_journeys"]


def _node_at(
    root: yaml.Node | None, loc: Sequence[int | str]
) -> tuple[yaml.Node | None, list[str]]:
    """The deepest node along ``loc`` and the path of keys actually found."""
    node = root
    path: list[str] = []
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    found = value
                    break
            if found is None:
                continue  # e.g. the discriminator tag pydantic adds ("send", "wait")
            node = found
            path.append(str(part))
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                path.append(str(part))
        else:
            continue
    return node, path


def _fail(
    source: str, line: int | None, field: str, message: str, more: list[dict[str, Any]]
) -> InputError:
    where = f"{source}:{line}" if line else source
    return InputError(
        f"{where}: {field or 'journey'}: {message}",
        code="journey.invalid",
        message_zh=f"{where}:字段 {field or '旅程'} 无效:{message}",
        details={"file": source, "line": line, "field": field, "errors": more},
    )


def load_journey_text(text: str, source: str = "<string>") -> Journey:
    """Parse and validate one journey from YAML text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise _fail(
            source, line, "", f"not valid YAML ({getattr(exc, 'problem', exc)})", []
        ) from exc
    if not isinstance(data, dict):
        raise _fail(
            source, 1, "", "a journey file must be a mapping (id, name, trigger, steps…)", []
        )
    try:
        return Journey.model_validate(data)
    except ValidationError as exc:
        # the node tree (for the lines of the errors) only when there are errors: composing
        # costs as much again as loading
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            loc = list(err["loc"])
            # model-level checks put the path they are about in front: "steps[2].template: …"
            hint = _HINT.match(msg)
            if hint:
                loc += [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]+", hint[1]) if p]
                msg = msg[hint.end() :]
            node, path = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else None
            errors.append({"line": line, "field": ".".join(path), "message": msg})
        first = errors[0]
        raise _fail(source, first["line"], first["field"], first["message"], errors) from exc


def load_journey_file(path: Path | str) -> Journey:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot read journey file {p}: {exc.strerror}",
            code="journey.unreadable",
            message_zh=f"无法读取旅程文件 {p}:{exc.strerror}",
            details={"file": str(p)},
        ) from exc
    return load_journey_text(text, str(p))


def load_journeys(paths: Iterable[Path | str]) -> list[Journey]:
    """Journeys from files and directories (``*.yaml``/``*.yml``); ids must be unique."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        else:
            files.append(p)
    seen: dict[str, str] = {}
    out = []
    for f in files:
        j = load_journey_file(f)
        if j.id in seen:
            raise InputError(
                f"{f}: journey id {j.id!r} is already defined in {seen[j.id]}",
                code="journey.duplicate_id",
                message_zh=f"{f}:旅程 id {j.id!r} 已在 {seen[j.id]} 中定义",
                details={"file": str(f), "field": "id"},
            )
        seen[j.id] = str(f)
        out.append(j)
    return out


def builtin_journeys() -> list[Journey]:
    """The built-in journeys shipped with huitouke (``journeys/builtin/*.yaml``): parsed
    once per process (the console's journeys pages list them on every view), each call
    given its own copies."""
    return [j.model_copy(deep=True) for j in _builtin_parsed()]


@functools.cache
def _builtin_parsed() -> tuple[Journey, ...]:
    base = resources.files("huitouke.journeys") / "builtin"
    out = []
    for entry in sorted(base.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            out.append(
                load_journey_text(entry.read_text(encoding="utf-8"), f"builtin/{entry.name}")
            )
    return tuple(out)
