"""`Record`: equality, a repr and `as_dict()` for the small value classes on the exec path.

They would be dataclasses anywhere else. Importing `dataclasses` pulls in `inspect`, `ast`, `dis`
and `tokenize`, and each decorated class compiles its methods at import: ~20 ms on every
`runwrap PROFILE -- cmd` (README, "Performance"). A subclass lists its fields in `__slots__` and
writes its own typed `__init__`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the exec path imports this module
if TYPE_CHECKING:
    from typing import Any


class Record:
    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq and not frozen

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class FrozenRecord(Record):
    """A `Record` that cannot be changed after `__init__` (which sets fields with `_init`), and so hashes."""

    __slots__: tuple[str, ...] = ()

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(getattr(self, field) for field in self.__slots__))
