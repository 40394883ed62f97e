"""``hf:PATH_OR_NAME`` — a local Hugging Face causal LM, prompted through its chat template.

Generation is greedy (deterministic) and runs in a worker thread, one request at a time (a single model on one
device gains nothing from concurrent ``generate`` calls). ``finish_reason`` is ``length`` when the answer used
all ``max_tokens`` new tokens without an end-of-sequence token, else ``stop``. Token counts are real (tokenizer).
Loading happens on the first request, not at construction.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ade_distill.errors import BackendError
from ade_distill.teacher.backends.base import TeacherRequest, TeacherResponse

__all__ = ["HFBackend"]


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
