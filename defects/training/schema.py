"""What a hyperparameter of the entry point is: its type, default, bounds and help, how a
value is parsed and checked, and the one text form every backend passes. The schema itself,
the table of hyperparameters, is in :mod:`.contract`.

Standard library only: this runs inside the training container.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

# What ``auto`` hyperparameters (epochs, image size) take to be chosen from the data.
AUTO = "auto"

HyperparameterValue = str | int | float | bool

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of the entry point.

    ``kind`` is ``int``, ``float``, ``bool``, ``choice`` (one of ``choices``) or ``text``
    (checked and normalised by ``normalise``). Numbers may have bounds; ``low_open`` and
    ``high_open`` exclude the bound itself.
    """

    name: str
    kind: str
    default: HyperparameterValue
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    normalise: Callable[[str], str] | None = None
    metavar: str | None = None
    # Also accepts ``auto``: the entry point chooses from the data.
    auto: bool = False
    # Other names a choice is known by (an old name, say): (alias, choice).
    aliases: tuple[tuple[str, str], ...] = ()

    @property
    def flag(self) -> str:
        """The command-line spelling: ``--batch-size`` for ``batch_size``."""
        return "--" + self.name.replace("_", "-")

    def bounds_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return " and ".join(parts)

    def parse(self, value: object) -> HyperparameterValue:
        """``value`` (text from a command line, or a Python value) as this hyperparameter's
        type, checked; a ``ValueError`` names what is allowed."""
        text = str(value).strip()
        if self.auto and text.lower() == AUTO:
            return AUTO
        try:
            if self.kind == "bool":
                if isinstance(value, bool):
                    return value
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                number: int | float = int(value) if isinstance(value, int | float) else int(text)
            elif self.kind == "float":
                number = float(value) if isinstance(value, int | float) else float(text)
                if not math.isfinite(number):
                    raise ValueError
            elif self.kind == "choice":
                text = dict(self.aliases).get(text, text)
                if text not in self.choices:
                    raise ValueError
                return text
            else:
                return self.normalise(text) if self.normalise else text
        except ValueError as error:
            detail = str(error) if self.kind == "text" and str(error) else self._expected()
            raise ValueError(f"{self.name} is {value!r}: {detail}") from None
        self._check_bounds(number)
        return number

    def _expected(self) -> str:
        if self.kind == "bool":
            return "expected true or false"
        if self.kind == "choice":
            return "expected " + self.bounds_text()
        number = "an integer" if self.kind == "int" else "a number"
        return f"expected {number} or {AUTO}" if self.auto else f"expected {number}"

    def _check_bounds(self, number: float) -> None:
        too_low = self.low is not None and (
            number <= self.low if self.low_open else number < self.low
        )
        too_high = self.high is not None and (
            number >= self.high if self.high_open else number > self.high
        )
        if too_low or too_high:
            raise ValueError(f"{self.name} is {number:g}: it must be {self.bounds_text()}")

    def serialise(self, value: HyperparameterValue) -> str:
        """The one text form every backend passes: ``true``/``false``, ``0.001``, ``384x216``.

        Numbers are written so that a JSON round trip (which the SageMaker SDK's driver does
        to every value) gives back the same text."""
        parsed = self.parse(value)
        if isinstance(parsed, bool):
            return "true" if parsed else "false"
        if isinstance(parsed, float):
            return json.dumps(parsed)
        return str(parsed)
