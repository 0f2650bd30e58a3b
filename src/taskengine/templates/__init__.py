"""Templates: Go `text/template` and Jinja syntax, rendered in a bounded sandbox.

- `taskengine.templates.gotemplate`: Go actions translated to Jinja (`go_to_jinja`)
- `taskengine.templates.gofmt`: Go's `fmt` (`sprintf`, `%v`) for `printf` and numbers
- `taskengine.templates.sandbox`: the bounded Jinja environment
- `taskengine.templates.bounds`: limits on widths, sizes and nesting
- `taskengine.templates.render`: `Template`, `compile_template`, `render`, `template_variables`
"""

from __future__ import annotations

from taskengine.templates.bounds import MAX_SEQUENCE
from taskengine.templates.render import Template, compile_template, render, template_variables

__all__ = ["MAX_SEQUENCE", "Template", "compile_template", "render", "template_variables"]
