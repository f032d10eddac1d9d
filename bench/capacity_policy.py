"""The worker fleet's scaling policies, read from the Terraform that deploys them.

``load_policies(module_dir)`` parses ``scaling.tf`` and ``variables.tf`` of the compute module
(python-hcl2) into plain dataclasses: the scalable target's bounds, every target-tracking
policy (target, cooldowns, the metric-math expression it tracks), and every step policy with
the alarm that invokes it (threshold, datapoints, expression, step adjustments, cooldown).
``var.*`` references resolve to the variables' defaults or to explicit overrides. Nothing here
is retyped from the .tf files: change a value there and the simulation changes.

``MetricMath`` evaluates the CloudWatch metric-math subset these files use: numbers, metric
ids, + - * /, comparisons, AND/OR, IF(cond, a, b) and FILL(x, value).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

_REF = re.compile(r"^\$\{(.*)\}$")

# --- HCL values ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    """python-hcl2 keeps string quotes ('"ecs"'); expressions come as '${...}'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return str(value)


def _blocks(doc: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """{resource name: body} for every resource of one type in a parsed file."""
    out: dict[str, dict[str, Any]] = {}
    for entry in doc.get("resource", []):
        for rtype, named in entry.items():
            if _text(rtype) == kind:
                for name, body in named.items():
                    out[_text(name)] = body
    return out


def _one(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    items = body.get(key) or [{}]
    return items[0]


def read_variable_defaults(path: Path) -> dict[str, Any]:
    """Default of every variable declared in a variables.tf (variables without one are left out)."""
    out: dict[str, Any] = {}
    for entry in hcl2.loads(path.read_text()).get("variable", []):
        for name, body in entry.items():
            if "default" in body:
                default = body["default"]
                out[_text(name)] = _text(default) if isinstance(default, str) else default
    return out


class Resolver:
    """Turns an HCL attribute into a number or string: literals, or var.NAME."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        self.variables = dict(variables)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            ref = _REF.match(value)
            if ref:
                expr = ref.group(1).strip()
                if expr.startswith("var.") and expr[4:] in self.variables:
                    return self.variables[expr[4:]]
                raise ValueError(f"cannot resolve {value!r} (only literals and var.* with a default)")
            return _text(value)
        return value

    def number(self, value: Any) -> float:
        return float(self(value))


# --- metric math ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|[-+*/(),<>]))")
Value = float | None
Env = Mapping[str, Value]


def _arith(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    if op == "/":
        return None if b == 0 else a / b
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def _compare(op: str, a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    return float({">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b}[op])


class MetricMath:
    """A compiled CloudWatch metric-math expression over named metric values."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._tokens = self._tokenize(expression)
        self._pos = 0
        self._fn = self._or()
        if self._pos != len(self._tokens):
            raise ValueError(f"unexpected {self._tokens[self._pos]!r} in {expression!r}")
        self.names = {t for t in self._tokens if re.fullmatch(r"[a-z_][A-Za-z0-9_]*", t)}

    def __call__(self, env: Env) -> Value:
        return self._fn(env)

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        tokens, pos = [], 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            if not m:
                raise ValueError(f"cannot read metric math at {text[pos:]!r}")
            tokens.append(next(g for g in m.groups() if g is not None))
            pos = m.end()
        return tokens

    def _peek(self) -> str | None:
        return self._tokens[self._pos] if self._pos < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> str:
        tok = self._peek()
        if tok is None or (expected is not None and tok != expected):
            raise ValueError(f"expected {expected or 'a term'} in {self.expression!r}")
        self._pos += 1
        return tok

    def _or(self) -> Callable[[Env], Value]:
        left = self._and()
        while self._peek() == "OR":
            self._take()
            a, b = left, self._and()
            left = lambda e, a=a, b=b: None if a(e) is None or b(e) is None else float(bool(a(e)) or bool(b(e)))  # noqa: E731
        return left

    def _and(self) -> Callable[[Env], Value]:
        left = self._cmp()
        while self._peek() == "AND":
            self._take()
            a, b = left, self._cmp()
            left = lambda e, a=a, b=b: None if a(e) is None or b(e) is None else float(bool(a(e)) and bool(b(e)))  # noqa: E731
        return left

    def _cmp(self) -> Callable[[Env], Value]:
        left = self._add()
        if self._peek() in (">", "<", ">=", "<=", "==", "!="):
            op, right = self._take(), self._add()
            return lambda e, a=left, b=right, op=op: _compare(op, a(e), b(e))
        return left

    def _add(self) -> Callable[[Env], Value]:
        left = self._mul()
        while self._peek() in ("+", "-"):
            op, right = self._take(), self._mul()
            left = lambda e, a=left, b=right, op=op: _arith(op, a(e), b(e))  # noqa: E731
        return left

    def _mul(self) -> Callable[[Env], Value]:
        left = self._unary()
        while self._peek() in ("*", "/"):
            op, right = self._take(), self._unary()
            left = lambda e, a=left, b=right, op=op: _arith(op, a(e), b(e))  # noqa: E731
        return left

    def _unary(self) -> Callable[[Env], Value]:
        if self._peek() == "-":
            self._take()
            inner = self._unary()
            return lambda e: None if inner(e) is None else -inner(e)  # type: ignore[operator]
        return self._primary()

    def _primary(self) -> Callable[[Env], Value]:
        tok = self._take()
        if tok == "(":
            inner = self._or()
            self._take(")")
            return inner
        if re.fullmatch(r"\d+(?:\.\d*)?", tok):
            return lambda e, v=float(tok): v
        if self._peek() == "(":
            self._take("(")
            args = [self._or()]
            while self._peek() == ",":
                self._take()
                args.append(self._or())
            self._take(")")
            return self._function(tok, args)
        return lambda e, name=tok: e.get(name)

    def _function(self, name: str, args: list[Callable[[Env], Value]]) -> Callable[[Env], Value]:
        if name == "IF" and len(args) == 3:
            c, a, b = args
            return lambda e: None if c(e) is None else (a(e) if c(e) else b(e))
        if name == "FILL" and len(args) == 2:
            x, v = args
            return lambda e: v(e) if x(e) is None or (isinstance(x(e), float) and math.isnan(x(e))) else x(e)
        raise ValueError(f"metric math function {name}/{len(args)} is not supported")


# --- the policies --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricQuery:
    """A metric-math query: named CloudWatch metrics and the expression that returns data."""

    metrics: dict[str, tuple[str, str]]  # id -> (namespace, metric name)
    expression: MetricMath

    def value(self, sample: Mapping[tuple[str, str], float]) -> Value:
        return self.expression({mid: sample.get(metric) for mid, metric in self.metrics.items()})


@dataclass(frozen=True)
class TargetTracking:
    name: str
    target: float
    scale_out_cooldown_s: float
    scale_in_cooldown_s: float
    disable_scale_in: bool
    metric: MetricQuery


@dataclass(frozen=True)
class StepAdjustment:
    lower: float  # bounds relative to the alarm threshold, as AWS reads them
    upper: float
    adjustment: float


@dataclass(frozen=True)
class StepPolicy:
    name: str
    adjustment_type: str
    cooldown_s: float
    steps: tuple[StepAdjustment, ...]
    # the alarm that invokes it
    comparison: str
    threshold: float
    evaluation_periods: int
    datapoints_to_alarm: int
    metric: MetricQuery


@dataclass(frozen=True)
class Policies:
    min_capacity: int
    max_capacity: int
    target_tracking: tuple[TargetTracking, ...]
    steps: tuple[StepPolicy, ...]
    variables: dict[str, Any]


def _query_from_tt(spec: Mapping[str, Any], r: Resolver) -> MetricQuery:
    metrics, expression = {}, None
    for m in spec.get("metrics", []):
        if "expression" in m and m.get("return_data", True):
            expression = MetricMath(r(m["expression"]))
        elif m.get("metric_stat"):
            metric = _one(_one(m, "metric_stat"), "metric")
            metrics[r(m["id"])] = (r(metric["namespace"]), r(metric["metric_name"]))
    if expression is None:
        raise ValueError("a customized metric without a returned expression")
    return MetricQuery(metrics, expression)


def _query_from_alarm(alarm: Mapping[str, Any], r: Resolver) -> MetricQuery:
    metrics, expression = {}, None
    for q in alarm.get("metric_query", []):
        if "expression" in q and q.get("return_data", False):
            expression = MetricMath(r(q["expression"]))
        elif q.get("metric"):
            metric = _one(q, "metric")
            metrics[r(q["id"])] = (r(metric["namespace"]), r(metric["metric_name"]))
    if expression is None:
        raise ValueError("an alarm without a returned expression")
    return MetricQuery(metrics, expression)


def load_policies(module_dir: Path, overrides: Mapping[str, Any] | None = None) -> Policies:
    """Every scaling policy of the compute module in ``module_dir``, as Terraform writes it."""
    variables = {**read_variable_defaults(module_dir / "variables.tf"), **(overrides or {})}
    r = Resolver(variables)
    doc = hcl2.loads((module_dir / "scaling.tf").read_text())
    [target] = _blocks(doc, "aws_appautoscaling_target").values()
    policies = _blocks(doc, "aws_appautoscaling_policy")
    alarms = _blocks(doc, "aws_cloudwatch_metric_alarm")

    tracking, steps = [], []
    for name, body in policies.items():
        kind = r(body["policy_type"])
        if kind == "TargetTrackingScaling":
            cfg = _one(body, "target_tracking_scaling_policy_configuration")
            tracking.append(TargetTracking(
                name=name, target=r.number(cfg["target_value"]),
                scale_out_cooldown_s=r.number(cfg.get("scale_out_cooldown", 300)),
                scale_in_cooldown_s=r.number(cfg.get("scale_in_cooldown", 300)),
                disable_scale_in=bool(r(cfg.get("disable_scale_in", False))),
                metric=_query_from_tt(_one(cfg, "customized_metric_specification"), r)))
        elif kind == "StepScaling":
            cfg = _one(body, "step_scaling_policy_configuration")
            invokers = [a for a in alarms.values()
                        if f"${{aws_appautoscaling_policy.{name}.arn}}" in a.get("alarm_actions", [])]
            if len(invokers) != 1:
                raise ValueError(f"step policy {name} needs exactly one alarm, found {len(invokers)}")
            alarm = invokers[0]
            evaluation = int(r.number(alarm["evaluation_periods"]))
            steps.append(StepPolicy(
                name=name, adjustment_type=r(cfg["adjustment_type"]), cooldown_s=r.number(cfg.get("cooldown", 300)),
                steps=tuple(StepAdjustment(
                    lower=r.number(s["metric_interval_lower_bound"]) if "metric_interval_lower_bound" in s else -math.inf,
                    upper=r.number(s["metric_interval_upper_bound"]) if "metric_interval_upper_bound" in s else math.inf,
                    adjustment=r.number(s["scaling_adjustment"])) for s in cfg.get("step_adjustment", [])),
                comparison=r(alarm["comparison_operator"]), threshold=r.number(alarm["threshold"]),
                evaluation_periods=evaluation,
                datapoints_to_alarm=int(r.number(alarm.get("datapoints_to_alarm", evaluation))),
                metric=_query_from_alarm(alarm, r)))
        else:
            raise ValueError(f"policy type {kind} is not simulated")
    return Policies(min_capacity=int(r.number(target["min_capacity"])),
                    max_capacity=int(r.number(target["max_capacity"])),
                    target_tracking=tuple(tracking), steps=tuple(steps), variables=variables)
