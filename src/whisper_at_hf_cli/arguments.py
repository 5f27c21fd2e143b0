"""What the parsers share: `type=` callables made from the option rules, so a bad value is argparse's usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def checked(check: Callable[[Any], Any], name: str, rule_name: str | None = None) -> Callable[[str], Any]:
    """An argparse `type` from a rule of `option_rules` (called with the parsed number: an int where the text is
    one, else a float): its `ValueError` becomes argparse's usage error (exit 2). `rule_name`, where given, is the
    name the rule's message uses (`"tag_threshold"`), replaced by the option's (`--tag-threshold`)."""

    def parse(text: str) -> Any:
        try:
            value: Any = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value)
        except ValueError as error:
            message = str(error) if rule_name is None else str(error).replace(rule_name, name)
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


__all__ = ["checked"]
