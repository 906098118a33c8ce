"""Sigma detection semantics evaluated over tidewaiter events (pySigma parses, it does not match).

A processed rule's condition tree (after the pipeline has mapped its fields) is compiled once into
nested predicates over the flat field view of an event. Strings compare case-insensitively as a
whole, with `*` and `?` wildcards (the `contains`, `startswith` and `endswith` modifiers have
already become wildcards); `|re` searches; `|cased` keeps case; `|cidr`, `|gt`.., `|exists`,
`|fieldref`, null and numbers are supported. Anything else makes the rule unsupported, with a
sentence saying why.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from tidewaiter.sigma.fields import FIELDS, KEYWORD_FIELDS, Value

Fields = dict[str, Value]
Predicate = Callable[[Fields], bool]
ValueTest = Callable[[Value, Fields], bool]

_COMPARE = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


class Unsupported(Exception):
    """The rule uses a field or value tidewaiter cannot evaluate; the message says which."""


def compile_rule(rule: SigmaRule) -> Predicate:
    """One predicate for the rule's conditions (any of them matching). Raises Unsupported."""
    predicates = [_node(condition.parsed) for condition in rule.detection.parsed_condition]
    return lambda fields: any(p(fields) for p in predicates)


def _node(node: object) -> Predicate:
    if isinstance(node, ConditionAND):
        parts = [_node(a) for a in node.args]
        return lambda fields: all(p(fields) for p in parts)
    if isinstance(node, ConditionOR):
        parts = [_node(a) for a in node.args]
        return lambda fields: any(p(fields) for p in parts)
    if isinstance(node, ConditionNOT):
        [inner] = [_node(a) for a in node.args]
        return lambda fields: not inner(fields)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field(node.field, _value(node.value))
    if isinstance(node, ConditionValueExpression):
        test = _value(node.value)
        if isinstance(node.value, (SigmaNull, SigmaExists)):
            raise Unsupported("a keyword search for null or existence has no meaning")
        return lambda fields: any(test(fields.get(name), fields) for name in KEYWORD_FIELDS)
    raise Unsupported(f"the condition element {type(node).__name__} is not supported")


def _field(name: str, test: ValueTest) -> Predicate:
    if name not in FIELDS:
        raise Unsupported(f"field '{name}' has no counterpart in tidewaiter's events")
    return lambda fields: test(fields.get(name), fields)


def _value(value: object) -> ValueTest:
    if isinstance(value, SigmaExpansion):
        tests = [_value(v) for v in value.values]
        return lambda got, fields: any(t(got, fields) for t in tests)
    if isinstance(value, SigmaNull):
        return lambda got, fields: got is None
    if isinstance(value, SigmaExists):
        wanted = value.exists
        return lambda got, fields: (got is not None) == wanted
    if isinstance(value, SigmaBool):
        wanted_text = str(value.boolean).lower()
        return _any(lambda got: _text(got).lower() == wanted_text)
    if isinstance(value, SigmaNumber):
        number = value.number
        return _any(lambda got: _number(got) == number)
    if isinstance(value, SigmaCompareExpression):
        compare, limit = _COMPARE[value.op], value.number.number
        return _any(lambda got: (n := _number(got)) is not None and compare(n, limit))
    if isinstance(value, SigmaCIDRExpression):
        network = value.network
        return _any(lambda got: _in_network(got, network))
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= _RE_FLAGS[flag]
        pattern = re.compile(str(value.regexp), flags)
        return _any(lambda got: pattern.search(_text(got)) is not None)
    if isinstance(value, SigmaFieldReference):
        other = value.field
        if other not in FIELDS:
            raise Unsupported(
                f"field '{other}' (fieldref) has no counterpart in tidewaiter's events"
            )
        return lambda got, fields: (
            got is not None and _text(got).lower() == _text(fields.get(other)).lower()
        )
    if isinstance(value, SigmaString):
        pattern = _wildcards(value, cased=isinstance(value, SigmaCasedString))
        return _any(lambda got: pattern.fullmatch(_text(got)) is not None)
    raise Unsupported(f"values of type {type(value).__name__} are not supported")


def _wildcards(value: SigmaString, cased: bool) -> re.Pattern[str]:
    parts = []
    for part in value.s:
        if isinstance(part, str):
            parts.append(re.escape(part))
        elif part is SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        else:  # a placeholder (`|expand`) the pipeline did not resolve
            raise Unsupported(f"the placeholder in '{value.original}' is not resolved (|expand)")
    return re.compile("".join(parts), re.DOTALL if cased else re.DOTALL | re.IGNORECASE)


def _any(test: Callable[[Value], bool]) -> ValueTest:
    """A test of one value, applied to each of a multi-valued field; a missing field fails."""

    def check(got: Value, fields: Fields) -> bool:
        if got is None:
            return False
        if isinstance(got, tuple):
            return any(test(g) for g in got)
        return test(got)

    return check


def _text(got: Value) -> str:
    if got is None:
        return ""
    if isinstance(got, bool):
        return str(got).lower()
    return str(got)


def _number(got: Value) -> float | None:
    if isinstance(got, bool) or got is None:
        return None
    if isinstance(got, int):
        return got
    try:
        return float(str(got))
    except ValueError:
        return None


def _in_network(got: Value, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(str(got)) in network
    except ValueError:
        return False
