"""Token prices and cost. Prices (USD per 1M input / output tokens) come from the shipped ``prices.yaml``,
overridable entry by entry with a user YAML of the same layout.

Token estimates for ``--dry-run`` use ~4 characters per token (the usual rule of thumb for English text with
OpenAI tokenizers; no tokenizer is downloaded) and a fixed allowance of output tokens per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ade_distill.errors import ConfigError
from ade_distill.yamlio import read_yaml_mapping

__all__ = ["Price", "PriceTable", "estimate_tokens", "CHARS_PER_TOKEN"]

_DEFAULT = Path(__file__).resolve().parent / "prices.yaml"
CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str) -> int:
    """Rough token count: ``ceil(len(text) / 4)`` plus 4 per message overhead is added by the caller."""
    return max(1, -(-len(text) // int(CHARS_PER_TOKEN)))


@dataclass(frozen=True)
class Price:
    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


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

    @staticmethod
    def _read(path: Path) -> dict[str, Price]:
        raw = read_yaml_mapping(path, not_found=f"price table {str(path)!r} not found",
                                not_mapping="expected a mapping model -> {input: USD, output: USD} per 1M tokens")
        out = {}
        for model, entry in raw.items():
            try:
                inp, outp = float(entry["input"]), float(entry["output"])
            except (TypeError, KeyError, ValueError):
                raise ConfigError(f"{path}: model {model!r}: expected {{input: number, output: number}} "
                                  f"(USD per 1M tokens), got {entry!r}") from None
            if inp < 0 or outp < 0:
                raise ConfigError(f"{path}: model {model!r}: prices must be >= 0, got {entry!r}")
            out[str(model)] = Price(inp, outp)
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
