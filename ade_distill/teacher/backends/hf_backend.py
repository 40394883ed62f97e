"""``hf:PATH_OR_NAME`` — a local Hugging Face causal LM, prompted through its chat template.

Generation is greedy (deterministic) and runs in a worker thread, one request at a time (a single model on one
device gains nothing from concurrent ``generate`` calls). ``finish_reason`` is ``length`` when the answer used
all ``max_tokens`` new tokens without an end-of-sequence token, else ``stop``. Token counts are real (tokenizer).
Loading happens on the first request, not at construction.

The response cache keys the model by its content (:attr:`HFBackend.endpoint`), not by its path, so a model
retrained in place never serves the old model's answers: for a local folder, a sha256 over every file's name and
bytes (weights, config, tokenizer, chat template — whatever can change an answer); for a hub name, the commit of
the downloaded snapshot (hub snapshots are content-addressed). Size and modification time would be cheaper but
are not sound: a retrained model of the same architecture has the same size, and copies (``cp -p``, ``rsync -a``)
keep times. The digest is computed once per backend; reading the weights costs about what loading them does.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path
from typing import Any

from ade_distill.errors import BackendError
from ade_distill.teacher.backends.base import TeacherRequest, TeacherResponse

__all__ = ["HFBackend", "folder_digest"]


def folder_digest(folder: Path) -> str:
    """sha256 over the relative path and bytes of every file under ``folder`` (hidden files and folders, such as
    ``.git`` or ``.cache``, left out), in path order."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        h.update(str(f.stat().st_size).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


class HFBackend:
    kind = "hf"
    host = None
    billable = False
    cacheable = True
    uses_prompt = True

    def __init__(self, name_or_path: str, *, device: str | None = None, local_files_only: bool = False) -> None:
        self.model = name_or_path
        self.device = device
        self.local_files_only = local_files_only
        self._tok: Any = None
        self._lm: Any = None
        self._lock = threading.Lock()
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        """The model's content identity for the response cache (see the module docstring)."""
        if self._endpoint is None:
            folder = Path(self.model)
            if folder.is_dir():
                self._endpoint = f"hf-folder:sha256:{folder_digest(folder)}"
            else:
                self._endpoint = f"hf-hub:{self.model}@{Path(self._hub_snapshot()).name}"
        return self._endpoint

    def _hub_snapshot(self) -> str:
        """The local snapshot folder of a hub model (named by its commit), downloading the model if needed."""
        from huggingface_hub import snapshot_download

        try:
            return str(snapshot_download(self.model, local_files_only=True))
        except Exception:  # not downloaded yet (or not a hub name): loading fetches it, or says what is wrong
            with self._lock:
                self._load()
            return str(snapshot_download(self.model, local_files_only=True))

    def _load(self) -> None:
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._tok = AutoTokenizer.from_pretrained(self.model, local_files_only=self.local_files_only)
            self._lm = AutoModelForCausalLM.from_pretrained(
                self.model, local_files_only=self.local_files_only,
                dtype=torch.bfloat16 if device.startswith("cuda") else torch.float32,
            ).to(device)  # type: ignore[arg-type]
        except (OSError, ValueError) as err:
            raise BackendError(f"cannot load hf model {self.model!r}: {err}") from None
        if not getattr(self._tok, "chat_template", None):
            raise BackendError(f"hf model {self.model!r} has no chat template; use an instruction-tuned model")
        self._lm.eval()
        self.device = device

    def _generate(self, request: TeacherRequest) -> TeacherResponse:
        import torch

        with self._lock:
            self._load()
            max_new = int(request.params.get("max_tokens") or 512)
            enc = self._tok.apply_chat_template(
                request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            enc = {k: v.to(self.device) for k, v in enc.items()}
            n_in = int(enc["input_ids"].shape[-1])
            with torch.inference_mode():
                out = self._lm.generate(**enc, max_new_tokens=max_new, do_sample=False,
                                        pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id)
            new = out[0, n_in:]
            eos = self._lm.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
            stopped = any(int(t) in eos_ids for t in new)
            text = self._tok.decode(new, skip_special_tokens=True)
        return TeacherResponse(
            content=text,
            finish_reason="stop" if stopped or len(new) < max_new else "length",
            usage={"prompt_tokens": n_in, "completion_tokens": int(len(new))},
            model=self.model,
            raw={"content": text, "generated_tokens": int(len(new))},
        )

    async def complete(self, request: TeacherRequest) -> TeacherResponse:
        return await asyncio.to_thread(self._generate, request)

    async def aclose(self) -> None:
        return None
