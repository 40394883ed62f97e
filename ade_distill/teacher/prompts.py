"""Prompt rendering from a :class:`~ade_distill.tasks.spec.TaskSpec` with versioned jinja templates.

A template ``prompts/NAME.jinja`` (e.g. ``re.v1``) defines two macros, ``system(task, example_json)`` and
``user(text)``. Messages are ``[system, (user, assistant) per demonstration..., user]``: demonstrations are
rendered as earlier turns with the exact format of the final question, so a k-shot prompt ends with the same
user message as a zero-shot one. The prompt hash is the sha256 of the template version and the rendered
messages; it goes into the cache key and into every silver record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from ade_distill.errors import ConfigError
from ade_distill.tasks.spec import Demonstration, TaskSpec

__all__ = ["Prompt", "render_prompt", "prompt_hash", "output_schema", "extract_input_text", "demo_answer"]

_PROMPT_DIR = Path(__file__).resolve().parent / "prompts"
_TEXT_OPEN = "Input text:\n<text>\n"
_TEXT_CLOSE = "\n</text>"

Message = dict[str, str]


@lru_cache(maxsize=8)
def _template_module(version: str) -> Any:
    path = _PROMPT_DIR / f"{version}.jinja"
    if not path.is_file():
        known = sorted(p.stem for p in _PROMPT_DIR.glob("*.jinja"))
        raise ConfigError(f"unknown prompt template {version!r}; expected one of {known}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_PROMPT_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )
    return env.get_template(f"{version}.jinja").module


def _keys(task: TaskSpec) -> tuple[str, str]:
    return task.entity(task.head_label).key, task.entity(task.tail_label).key


def demo_answer(task: TaskSpec, relations: Sequence[dict[str, str]]) -> str:
    """The assistant turn of a demonstration: the JSON the model is asked to produce."""
    hk, tk = _keys(task)
    return json.dumps({"relations": [{hk: r[hk], tk: r[tk]} for r in relations]}, ensure_ascii=False)


class Prompt:
    """Rendered chat messages plus their identity (template version and hash)."""

    __slots__ = ("messages", "template_version", "hash")

    def __init__(self, messages: list[Message], template_version: str) -> None:
        self.messages = messages
        self.template_version = template_version
        self.hash = prompt_hash(messages, template_version)


def prompt_hash(messages: Sequence[Message], template_version: str) -> str:
    """sha256 over the template version and the rendered messages (canonical JSON)."""
    blob = json.dumps({"template": template_version, "messages": list(messages)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def render_prompt(task: TaskSpec, text: str, demos: Sequence[Demonstration] = ()) -> Prompt:
    """Render the chat messages asking the teacher for ``task`` relations in ``text``.

    Args:
        task: the task spec; ``task.prompt_template`` names the template version.
        text: the input text, inserted verbatim.
        demos: k-shot demonstrations (already selected and validated), rendered as earlier turns.

    Raises:
        ConfigError: unknown template version.
    """
    mod = _template_module(task.prompt_template)
    hk, tk = _keys(task)
    example_json = json.dumps({"relations": [{hk: "...", tk: "..."}]})
    messages: list[Message] = [{"role": "system", "content": str(mod.system(task, example_json)).strip()}]
    for demo in demos:
        messages.append({"role": "user", "content": str(mod.user(demo.text))})
        messages.append({"role": "assistant", "content": demo_answer(task, demo.relations)})
    messages.append({"role": "user", "content": str(mod.user(text))})
    return Prompt(messages, task.prompt_template)


def extract_input_text(user_message: str) -> str:
    """Recover the input text from a rendered user message (used by the stand-in server and replay).

    Returns the whole message when it does not carry the template's delimiters.
    """
    i = user_message.find(_TEXT_OPEN)
    j = user_message.rfind(_TEXT_CLOSE)
    if i < 0 or j < i + len(_TEXT_OPEN) - 1:
        return user_message
    return user_message[i + len(_TEXT_OPEN) : j]


def output_schema(task: TaskSpec) -> dict[str, Any]:
    """JSON schema of the answer: ``{"relations": [{head_key: str, tail_key: str}, ...]}`` (strict mode)."""
    hk, tk = _keys(task)
    item = {
        "type": "object",
        "properties": {hk: {"type": "string"}, tk: {"type": "string"}},
        "required": [hk, tk],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"relations": {"type": "array", "items": item}},
        "required": ["relations"],
        "additionalProperties": False,
    }
