"""``replay:FILE`` — recorded chat-completion responses as an offline teacher.

The file holds one recorded response a line (the format of ``shared/data/teacher_outputs``): ``text`` (the
input), optional ``title``, ``content``, ``function_call`` ``{name, arguments}``, ``finish_reason``, ``usage``,
``model``, ``id``. Responses are looked up by the exact input text, under two keys: ``text`` and, when a title
is recorded, ``title + " " + text`` (the CDR recordings, whose inputs are whole abstracts). A text with no
recording answers ``found=False`` (the job records status ``no_recording``) — never an exception, never silence.
The rendered prompt is not used: recordings were made with their authors' prompt.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ade_distill.errors import ConfigError, DataError
from ade_distill.records import iter_jsonl
from ade_distill.teacher.backends.base import TeacherRequest, TeacherResponse

log = logging.getLogger(__name__)

__all__ = ["ReplayBackend", "load_recordings", "recording_to_response"]


def recording_to_response(rec: dict) -> TeacherResponse:
    fc = rec.get("function_call") or None
    args = fc.get("arguments") if isinstance(fc, dict) else None
    usage = rec.get("usage") or {}
    return TeacherResponse(
        content=rec.get("content"),
        function_arguments=args,
        finish_reason=rec.get("finish_reason"),
        usage={k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")},
        model=rec.get("model"),
        raw={k: rec.get(k) for k in ("id", "model", "created", "system_fingerprint", "finish_reason", "content",
                                     "function_call", "usage")},
    )


def load_recordings(path: str | Path) -> tuple[dict[str, dict], int]:
    """Index a recordings file by input text. Returns ``(index, duplicates)``; the first recording of a
    text wins and later ones are counted as duplicates.

    Raises:
        DataError: the file is missing or a line is not a recording (names file and line).
    """
    p = Path(path)
    index: dict[str, dict] = {}
    dups = 0
    for lineno, obj in iter_jsonl(p):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise DataError("expected a recorded response with a string 'text'", path=p, line=lineno)
        keys = [obj["text"]]
        if isinstance(obj.get("title"), str) and obj["title"]:
            keys.insert(0, f"{obj['title']} {obj['text']}")
        if keys[0] in index:
            dups += 1
            continue
        for k in keys:
            index.setdefault(k, obj)
    return index, dups


class ReplayBackend:
    kind = "replay"
    host = None
    endpoint = None
    billable = False
    cacheable = False
    uses_prompt = False

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"replay file {str(p)!r} not found; give replay:PATH to a recorded responses JSONL")
        self.path = p
        self._index, self.duplicates = load_recordings(p)
        models = {r.get("model") for r in self._index.values()}
        self.model = models.pop() if len(models) == 1 else f"replay:{p.name}"
        if self.duplicates:
            log.warning("%s: %d duplicate recordings of the same text ignored (first kept)", p, self.duplicates)

    def __len__(self) -> int:
        return len(self._index)

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        rec = self._index.get(request.text)
        if rec is None:
            return TeacherResponse(content=None, found=False, model=self.model)
        return recording_to_response(rec)

    async def aclose(self) -> None:
        return None
