"""``Value``: what ``@dataclass(frozen=True)`` gave the sender's records, written once.

Creating a dataclass compiles its generated methods as the module is
imported (most of a millisecond per class), and ``dataclasses`` imports
``inspect`` (several more): ``import smtpstream.smtp`` made about thirty. A
subclass writes its ``__init__`` (fields set with ``object.__setattr__``) and
names its fields in class attributes; this base derives the rest from them,
as the dataclass did:

* ``_fields``: every field, in order (pickling and copying carry all of them);
* ``__match_args__``: the fields ``__init__`` takes (default ``_fields``),
  for ``match`` and :meth:`_replace`;
* ``_shown``: the fields ``repr`` shows (default ``__match_args__``);
* ``_compared``: those equality and hashing use (default ``__match_args__``).

Instances of one class are equal when their compared fields are; an
instance of another class is never equal (``NotImplemented``). Frozen (the
default): assigning or deleting an attribute raises
``dataclasses.FrozenInstanceError``, and the hash is that of the compared
fields. ``frozen=False`` in the class statement gives a mutable, unhashable
record (a dataclass's ``eq=True`` default).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, ClassVar, NoReturn, TypeVar

    V = TypeVar("V", bound="Value")

__all__ = ["Value"]


class Value:
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    _shown: ClassVar[tuple[str, ...]] = ()
    _compared: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, frozen: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if "_fields" in own:
            if "__match_args__" not in own:
                cls.__match_args__ = cls._fields
            if "_shown" not in own:
                cls._shown = cls.__match_args__
            if "_compared" not in own:
                cls._compared = cls.__match_args__
        if not frozen:
            cls.__setattr__ = object.__setattr__  # type: ignore[method-assign, assignment]
            cls.__delattr__ = object.__delattr__  # type: ignore[method-assign, assignment]
            cls.__hash__ = None  # type: ignore[assignment]

    def _key(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._compared])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._key() == other._key()  # type: ignore[attr-defined, no-any-return]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join([f"{name}={getattr(self, name)!r}" for name in self._shown])
        return f"{self.__class__.__qualname__}({shown})"

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        _frozen(name)

    def __delattr__(self, name: str) -> NoReturn:
        _frozen(name)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self._fields, state):
            object.__setattr__(self, name, value)

    def _replace(self: V, **changes: Any) -> V:
        """A copy with ``changes``, made through ``__init__`` (``dataclasses.replace``)."""
        fields = {name: getattr(self, name) for name in self.__match_args__}
        fields.update(changes)
        return self.__class__(**fields)


def _frozen(name: str) -> NoReturn:
    from dataclasses import FrozenInstanceError  # the dataclass's error, imported only when it is raised

    raise FrozenInstanceError(f"cannot assign to field {name!r}")
