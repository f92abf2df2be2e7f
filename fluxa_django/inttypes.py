"""Integer width markers used in entity annotations.

``uint8`` .. ``int64`` are ``Annotated[int, ...]`` aliases: type checkers see a
plain ``int`` while the schema builder reads the width and signedness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeAlias


@dataclass(frozen=True, slots=True)
class IntWidth:
    """Width marker carried by the integer aliases."""

    bits: int
    unsigned: bool

    @property
    def min(self) -> int:
        return 0 if self.unsigned else -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << self.bits) - 1 if self.unsigned else (1 << (self.bits - 1)) - 1


uint8: TypeAlias = Annotated[int, IntWidth(8, True)]
uint16: TypeAlias = Annotated[int, IntWidth(16, True)]
uint32: TypeAlias = Annotated[int, IntWidth(32, True)]
uint64: TypeAlias = Annotated[int, IntWidth(64, True)]
int8: TypeAlias = Annotated[int, IntWidth(8, False)]
int16: TypeAlias = Annotated[int, IntWidth(16, False)]
int32: TypeAlias = Annotated[int, IntWidth(32, False)]
int64: TypeAlias = Annotated[int, IntWidth(64, False)]
