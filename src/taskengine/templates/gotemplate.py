"""Translate Go `text/template` actions into Jinja, so templates written for the Go engine run.

Covered: field references (`.a.b`, `$.a`, `.` — rebound inside `range` and `with`), `if` /
`else if` / `else` / `end`, `range` (with `else`, and `$i, $e :=`), `with`, variables
(`$x := …`), comments, parenthesised pipelines with fields (`(index .repos 0).name`), and the
functions `eq ne lt le gt ge and or not len index printf print println`, as calls or at the
end of a pipeline (`.x | printf "%q"`). `printf`, `print` and `println` call Go's `fmt` rules
(`taskengine.templates.gofmt`), so they print exactly what Go prints. A block that is plain Jinja
(`{{ input | upper }}`) passes through unchanged, so both syntaxes can be mixed. `define`,
`template` and `block` have no Jinja equivalent here and are reported as errors.
"""

from __future__ import annotations

import re
from typing import Any

from taskengine.errors import TemplateError

__all__ = ["go_to_jinja", "template_to_jinja"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)*')
      | (?P<field>\$?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|\$?(?:\.[A-Za-z_]\w*)+|\$[A-Za-z_]\w*|\$\.?|\.)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<open>\()
      | (?P<close>\)(?:\.[A-Za-z_]\w*)*)
      | (?P<pipe>\|(?!\|))
      | (?P<assign>:=|=(?!=))
      | (?P<comma>,)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<other>==|!=|<=|>=|\S)
    )""",
    re.X,
)
_GO_FUNCS = {
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "len",
    "index",
    "printf",
    "print",
    "println",
}
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block"}
_ARITY: dict[str, tuple[int, int | None]] = {
    "eq": (2, None), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
    "and": (1, None), "or": (1, None), "not": (1, 1), "len": (1, 1), "index": (1, None),
    "printf": (1, None), "print": (0, None), "println": (0, None),
}  # fmt: skip
_BINARY = {"ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


def _is_go(body: str) -> bool:
    """Whether a `{{ }}` block is Go syntax (else it is left to Jinja)."""
    if not body or body.startswith(("/*", ".", "$")):
        return True
    if body.startswith("("):  # a parenthesised Go pipeline: `(index .x 0).name`
        inner = body[1:].lstrip()
        return inner.startswith((".", "$")) or _is_go(inner.split(")", 1)[0])
    word = re.match(r"[A-Za-z_]\w*", body)
    if word is None:
        return False
    name = word.group(0)
    rest = body[word.end() :]
    if name in _KEYWORDS:
        return rest == "" or rest[:1].isspace()
    if name not in _GO_FUNCS or not rest[:1].isspace():
        return False
    # `not x == 1` is Jinja; Go's operands are fields, variables, literals or parentheses
    return bool(re.match(r"\s+(?:[.$(\"`]|-?\d)", rest))


def _tokens(text: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:  # pragma: no cover - `other` matches any non-space
            raise TemplateError(f"cannot read Go template expression {text!r}")
        kind = m.lastgroup or "other"
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Translator:
    def __init__(self) -> None:
        self.stack: list[tuple[str, str | None]] = []  # (kind, dot variable)
        self.counter = 0

    @property
    def dot(self) -> str | None:
        for _kind, var in reversed(self.stack):
            if var is not None:
                return var
        return None

    # --- expressions -------------------------------------------------------------------------

    def operand(self, kind: str, text: str) -> str:
        if kind == "str":
            if text.startswith("`"):
                return repr(text[1:-1])
            if text.startswith("'"):  # a Go rune literal, or a Jinja string: keep it a string
                return text
            return text
        if kind == "field":
            return self.field(text)
        return text

    def field(self, text: str) -> str:
        if text.startswith("$."):
            return text[2:]
        if text == "$":
            raise TemplateError("'$' (the whole data) is not supported; name a variable instead")
        if text.startswith("$"):
            return text[1:]
        if text == ".":
            return self.dot or "_go_root()"
        if text.startswith("."):
            path = text[1:]
            return f"{self.dot}.{path}" if self.dot else path
        return text

    def parse_args(self, tokens: list[tuple[str, str]]) -> list[str]:
        """Operands of a command; parenthesised sub-pipelines become one operand."""
        args: list[str] = []
        i = 0
        while i < len(tokens):
            kind, text = tokens[i]
            if kind == "open":
                depth, j = 1, i + 1
                while j < len(tokens) and depth:
                    depth += {"open": 1, "close": -1}.get(tokens[j][0], 0)
                    j += 1
                fields = tokens[j - 1][1][1:] if tokens[j - 1][0] == "close" else ""
                args.append(f"({self.pipeline(tokens[i + 1 : j - 1])}){fields}")
                i = j
                continue
            args.append(self.operand(kind, text))
            i += 1
        return args

    def call(self, name: str, args: list[str]) -> str:
        low, high = _ARITY[name]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = (
                f"{low}" if low == high else f"at least {low}" if high is None else f"{low}-{high}"
            )
            raise TemplateError(f"Go function {name!r} takes {wanted} argument(s), got {len(args)}")
        if name == "eq":
            first, rest = args[0], args[1:]
            return "(" + " or ".join(f"{first} == {other}" for other in rest) + ")"
        if name in _BINARY:
            return f"({args[0]} {_BINARY[name]} {args[1]})"
        if name in ("and", "or"):
            return "(" + f" {name} ".join(args) + ")"
        if name == "not":
            return f"(not {args[0]})"
        if name == "len":
            return f"({args[0]} | length)"
        if name == "index":
            return args[0] + "".join(f"[{key}]" for key in args[1:])
        if name in ("printf", "print", "println"):  # Go's fmt, exactly (taskengine.templates.gofmt)
            return f"_go_{name}(" + ", ".join(args) + ")"
        raise TemplateError(f"unknown Go template function {name!r}")  # pragma: no cover

    def command(self, tokens: list[tuple[str, str]], piped: str | None = None) -> str:
        if not tokens:
            return piped or ""
        kind, text = tokens[0]
        if kind == "ident" and text in _GO_FUNCS:
            args = self.parse_args(tokens[1:])
            if piped is not None:
                args.append(piped)
            return self.call(text, args)
        if piped is not None:  # not a Go function: a Jinja filter such as `default('0')`
            return f"{piped} | " + " ".join(self.operand(k, t) for k, t in tokens)
        parts = self.parse_args(tokens)
        return parts[0] if len(parts) == 1 else " ".join(parts)

    def pipeline(self, tokens: list[tuple[str, str]]) -> str:
        stages: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for tok in tokens:
            depth += {"open": 1, "close": -1}.get(tok[0], 0)
            if tok[0] == "pipe" and depth == 0:
                stages.append([])
            else:
                stages[-1].append(tok)
        result: str | None = None
        for stage in stages:
            result = self.command(stage, result)
        return result or ""

    # --- actions -------------------------------------------------------------------------------

    def action(self, body: str) -> str:
        if body.startswith("/*"):
            return "{# " + body[2:].removesuffix("*/").strip() + " #}"
        tokens = _tokens(body)
        if not tokens:
            raise TemplateError("empty Go template action '{{ }}'")
        head = tokens[0][1] if tokens[0][0] == "ident" else ""
        if head in ("define", "template", "block"):
            raise TemplateError(
                f"Go template action {head!r} is not supported; use Jinja macros or includes"
            )
        if head == "if":
            self.stack.append(("if", None))
            return "{% if " + self.pipeline(tokens[1:]) + " %}"
        if head == "else":
            if len(tokens) > 1 and tokens[1][1] == "if":
                return "{% elif " + self.pipeline(tokens[2:]) + " %}"
            return "{% else %}"
        if head == "end":
            if not self.stack:
                raise TemplateError("'{{end}}' without an opening if, range or with")
            kind, _var = self.stack.pop()
            return {
                "if": "{% endif %}",
                "range": "{% endfor %}",
                "with": "{% endif %}{% endwith %}",
            }[kind]
        if head == "range":
            return self.range(tokens[1:])
        if head == "with":
            self.counter += 1
            var = f"_dot{self.counter}"
            expr = self.pipeline(tokens[1:])
            self.stack.append(("with", var))
            return "{% with " + var + " = " + expr + " %}{% if " + var + " %}"
        if (
            len(tokens) > 1
            and tokens[0][0] == "field"
            and tokens[0][1].startswith("$")
            and tokens[1][0] == "assign"
        ):
            return "{% set " + tokens[0][1][1:] + " = " + self.pipeline(tokens[2:]) + " %}"
        return "{{ " + self.pipeline(tokens) + " }}"

    def range(self, tokens: list[tuple[str, str]]) -> str:
        # Go ranges over a map's values (keys sorted); `$k, $v :=` gives key/index and value.
        assign = next((i for i, t in enumerate(tokens) if t[0] == "assign"), None)
        self.counter += 1
        var = f"_dot{self.counter}"
        if assign is not None:
            names = [t[1][1:] for t in tokens[:assign] if t[0] == "field" and t[1].startswith("$")]
            expr = self.pipeline(tokens[assign + 1 :])
            if len(names) == 2:
                self.stack.append(("range", names[1]))
                return "{% for " + f"{names[0]}, {names[1]}" + " in " + expr + " | go_pairs %}"
            if len(names) == 1:
                var = names[0]
        else:
            expr = self.pipeline(tokens)
        self.stack.append(("range", var))
        return "{% for " + var + " in " + expr + " | go_values %}"


class _Action:
    """One `{{ … }}` action split as ltrim, space, body, space, rtrim (no regex backtracking)."""

    __slots__ = ("_groups", "_whole")

    def __init__(self, whole: str) -> None:
        self._whole = whole
        inner = whole[2:-2]
        ltrim = "-" if inner.startswith("-") else ""
        inner = inner[len(ltrim) :]
        rtrim = "-" if inner.endswith("-") else ""
        inner = inner[: len(inner) - len(rtrim)]
        body = inner.lstrip()
        lspace = inner[: len(inner) - len(body)]
        stripped = body.rstrip()
        rspace = body[len(stripped) :]
        self._groups = (ltrim, lspace, stripped, rspace, rtrim)

    def groups(self) -> tuple[str, ...]:
        return self._groups

    def group(self, index: int) -> str:
        return self._whole if index == 0 else self._groups[index - 1]


def _sub_actions(source: str, replace: Any) -> str:
    """The actions of `source` replaced, in linear time: each `{{` pairs with the next `}}`.

    The regex retries from every `{{` that has no closing `}}`, which is quadratic in a run
    of braces (20 000 took seconds); `str.find` never looks at a character twice.
    """
    out: list[str] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            break
        stop = source.find("}}", start + 2)
        if stop < 0:
            break
        out.append(source[pos:start])
        out.append(replace(_Action(source[start : stop + 2])))
        pos = stop + 2
    out.append(source[pos:])
    return "".join(out)


def go_to_jinja(source: str) -> str:
    """Rewrite the Go actions of `source` as Jinja; Jinja blocks are left as they are."""
    translator = _Translator()

    def block(m: re.Match[str]) -> str:
        ltrim, _lspace, body, _rspace, rtrim = m.groups()
        if not _is_go(body):
            return m.group(0)
        out = translator.action(body)
        if ltrim:
            out = out[:2] + "-" + out[2:]
        if rtrim:
            out = out[:-2] + "-" + out[-2:]
        return out

    try:
        result = _sub_actions(source, block)
    except TemplateError:
        raise
    except Exception as exc:  # a malformed action the translator cannot read
        raise TemplateError(f"cannot read Go template action: {type(exc).__name__}: {exc}") from exc
    if translator.stack:
        raise TemplateError(
            f"Go template '{{{{{translator.stack[-1][0]}}}}}' is never closed with '{{{{end}}}}'"
        )
    return result


_STMT = re.compile(r"(\{%-?)(.*?)(-?%\})", re.S)
# A Go field reference: a dot that does not follow a name, bracket, paren or quote, then a name.
_GO_REF = re.compile(r"(?<![\w\]\)\.'\"])\.([A-Za-z_]\w*)")


def template_to_jinja(source: str) -> str:
    """A template as Jinja: Go actions in `{{ }}`, and Go references in `{% %}` statements."""
    translated = go_to_jinja(source)
    return _STMT.sub(lambda m: m.group(1) + _unquoted_refs(m.group(2)) + m.group(3), translated)


_QUOTED = re.compile(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")


def _unquoted_refs(body: str) -> str:
    """Rewrite `.name` references outside string literals only."""
    parts = _QUOTED.split(body)
    return "".join(p if i % 2 else _GO_REF.sub(r"\1", p) for i, p in enumerate(parts))
