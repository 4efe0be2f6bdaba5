"""HTML pages from Jinja2 templates shipped inside a package (`PACKAGE/templates/NAME`), escaped by default.

Autoescape is on for every page: whatever a page shows from the catalog (source, model and judge names, reasons,
params) is text, never markup, and no template marks a value safe. jinja2 is imported at the first render, so a
module that only may render a page costs its importers nothing.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    import jinja2

    # StrictUndefined: a name the template uses and the caller did not pass is an error, not an empty string.
    return jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render_page(package: str, template: str, /, **context: Any) -> str:
    """Render `template` from `package`'s templates/ folder, every `{{ value }}` HTML-escaped."""
    return _environment(package).get_template(template).render(**context)
