"""Go templates render exactly as Go's `text/template` (with `fmt`) renders them.

Every expected string below is what Go 1.22 prints for the template over `DATA` (Go types:
strings, `int`, `float64`, `bool`, `map[string]any`, `[]any`), worked out from the documented
rules of `text/template` and `fmt`: `%v` of a float64 is `%g` with the shortest digits (so 7.0
prints `7` and 1234567.0 `1.234567e+06`), `Sprint` puts spaces only between two non-strings,
a wrong verb prints `%!verb(type=value)`, and so on.
"""

from __future__ import annotations

import pytest

from taskengine.templates import render

DATA = {
    "input": "hello",
    "name": "Ann",
    "n": 42,
    "neg": -7,
    "pi": 3.14159,
    "big": 1234567.0,
    "whole": 7.0,
    "tiny": 0.00001,
    "ok": True,
    "no": False,
    "empty": "",
    "quote": 'say "hi"\n',
    "uni": "é",
    "items": ["a", "b", "c"],
    "get_data": {
        "owner": "ann",
        "repos": [{"name": "alpha", "stars": 5}, {"name": "beta", "stars": 12}],
    },
}

CASES = [
    # fields and values printed as Go's %v
    ("{{.input}}", "hello"),
    ("{{ .name }}", "Ann"),
    ("{{.n}}", "42"),
    ("{{.pi}}", "3.14159"),
    ("{{.whole}}", "7"),
    ("{{.big}}", "1.234567e+06"),
    ("{{.tiny}}", "1e-05"),
    ("{{.ok}}", "true"),
    # parenthesised pipelines, index, len
    ("{{(index .get_data.repos 0).name}}", "alpha"),
    ("{{(index .get_data.repos 1).stars}}", "12"),
    ("{{index .items 2}}", "c"),
    ('{{index .get_data "owner"}}', "ann"),
    ("{{len .items}}", "3"),
    ("{{len .get_data.repos}}", "2"),
    # pipelines into printf
    ('{{printf "%q" .input}}', '"hello"'),
    ('{{.input | printf "%q"}}', '"hello"'),
    ('{{.name | printf "%s!" | printf "%q"}}', '"Ann!"'),
    ('{{printf "%v" .n | printf "%q"}}', '"42"'),
    ('{{printf "%s-%s" .name (printf "%03d" .n)}}', "Ann-042"),
    # integers
    ('{{printf "%v" .n}}', "42"),
    ('{{printf "%d" .n}}', "42"),
    ('{{printf "%05d" .n}}', "00042"),
    ('{{printf "%+d" .n}}', "+42"),
    ('{{printf "% d" .n}}', " 42"),
    ('{{printf "%-5d|" .n}}', "42   |"),
    ('{{printf "%x" .n}}', "2a"),
    ('{{printf "%X" .n}}', "2A"),
    ('{{printf "%#x" .n}}', "0x2a"),
    ('{{printf "%o" .n}}', "52"),
    ('{{printf "%#o" 8}}', "010"),
    ('{{printf "%O" 8}}', "0o10"),
    ('{{printf "%b" .n}}', "101010"),
    ('{{printf "%c" .n}}', "*"),
    ('{{printf "%q" .n}}', "'*'"),
    ('{{printf "%U" .n}}', "U+002A"),
    ('{{printf "%#U" 233}}', "U+00E9 'é'"),
    ('{{printf "%.3d" 7}}', "007"),
    ('{{printf "%d" .neg}}', "-7"),
    ('{{printf "%x" .neg}}', "-7"),
    ('{{printf "%v" .neg}}', "-7"),
    ('{{printf "%*d" 5 .n}}', "   42"),
    # floats
    ('{{printf "%5.2f" .pi}}', " 3.14"),
    ('{{printf "%e" .pi}}', "3.141590e+00"),
    ('{{printf "%E" .pi}}', "3.141590E+00"),
    ('{{printf "%.2e" .big}}', "1.23e+06"),
    ('{{printf "%g" .pi}}', "3.14159"),
    ('{{printf "%g" .big}}', "1.234567e+06"),
    ('{{printf "%.3g" .pi}}', "3.14"),
    ('{{printf "%G" .tiny}}', "1E-05"),
    ('{{printf "%v" .whole}}', "7"),
    ('{{printf "%f" .whole}}', "7.000000"),
    ('{{printf "%.0f" .pi}}', "3"),
    ('{{printf "%8.3f|" .pi}}', "   3.142|"),
    ('{{printf "%-8.3f|" .pi}}', "3.142   |"),
    ('{{printf "%08.3f" .pi}}', "0003.142"),
    ('{{printf "%+.1f" .pi}}', "+3.1"),
    ('{{printf "%6.2f%%" .pi}}', "  3.14%"),
    ('{{printf "%.2f" 2.675}}', "2.67"),
    ('{{printf "%g" 100000.0}}', "100000"),
    ('{{printf "%g" 1000000.0}}', "1e+06"),
    ('{{printf "%v" 0.1}}', "0.1"),
    ('{{printf "%x" 3.5}}', "0x1.cp+01"),
    ('{{printf "%b" 1.0}}', "4503599627370496p-52"),
    # booleans
    ('{{printf "%t" .ok}}', "true"),
    ('{{printf "%v" .no}}', "false"),
    ('{{printf "%5t|" .ok}}', " true|"),
    # strings
    ('{{printf "%-8s|" .name}}', "Ann     |"),
    ('{{printf "%8s|" .name}}', "     Ann|"),
    ('{{printf "%s" .quote}}', 'say "hi"\n'),
    ('{{printf "%q" .quote}}', '"say \\"hi\\"\\n"'),
    ('{{printf "%x" .name}}', "416e6e"),
    ('{{printf "% x" .name}}', "41 6e 6e"),
    ('{{printf "%X" .name}}', "416E6E"),
    ('{{printf "%.2s" .name}}', "An"),
    ('{{printf "%q" .uni}}', '"é"'),
    ('{{printf "%+q" .uni}}', '"\\u00e9"'),
    ('{{printf "%#q" .name}}', "`Ann`"),
    ('{{printf "%[2]s %[1]s" .name .input}}', "hello Ann"),
    ('{{printf "100%%"}}', "100%"),
    # Go's error forms
    ('{{printf "%d" .name}}', "%!d(string=Ann)"),
    ('{{printf "%s" .n}}', "%!s(int=42)"),
    ('{{printf "%d %d" .n}}', "42 %!d(MISSING)"),
    ('{{printf "%d" .n .n}}', "42%!(EXTRA int=42)"),
    ('{{printf "%T %T %T %T" .n .pi .name .ok}}', "int float64 string bool"),
    # composite values under %v and %q
    ('{{printf "%v" .items}}', "[a b c]"),
    ('{{printf "%q" .items}}', '["a" "b" "c"]'),
    ('{{printf "%v" (index .get_data.repos 0)}}', "map[name:alpha stars:5]"),
    # print and println (fmt.Sprint / Sprintln)
    ("{{print .n .n}}", "42 42"),
    ("{{print .name .n}}", "Ann42"),
    ('{{print "a" "b"}}', "ab"),
    ("{{println .name .n}}", "Ann 42\n"),
    # actions
    ("{{if eq .n 42}}yes{{else}}no{{end}}", "yes"),
    ("{{if gt .n 50}}big{{else if gt .n 40}}mid{{else}}small{{end}}", "mid"),
    ("{{range .items}}[{{.}}]{{end}}", "[a][b][c]"),
    ("{{range $i, $e := .items}}{{$i}}={{$e}} {{end}}", "0=a 1=b 2=c "),
    ("{{with .get_data}}{{.owner}}{{end}}", "ann"),
    ("{{range .get_data.repos}}{{.name}}:{{.stars}};{{end}}", "alpha:5;beta:12;"),
    ("{{not .ok}}", "false"),
    ("{{and .ok .name}}", "Ann"),
    ("{{or .empty .name}}", "Ann"),
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("template", "expected"), CASES, ids=[c[0] for c in CASES])
def test_renders_as_go(template, expected):
    assert render(template, DATA) == expected
