"""HTML built safely: every value from the data (ids, arms, messages, paths, labels) reaches the
page through :func:`el` / :func:`esc`, which escape it (``html.escape(..., quote=True)``); only
markup built by these helpers (:class:`Markup`) is inserted as is."""

from __future__ import annotations

import html
from typing import Any

from .style import text as _text

__all__ = ["Markup", "el", "esc", "join", "kv_table", "sep", "table"]


class Markup(str):
    """HTML built by :func:`el`: inserted as is. Any other string is escaped."""

_VOID = {"meta", "img", "br", "hr", "link"}


def esc(value: Any) -> Markup:
    """``value`` as text, HTML-escaped (quotes included)."""
    return value if isinstance(value, Markup) else Markup(html.escape(_text(value), quote=True))


def _content(children: Any) -> str:
    if children is None:
        return ""
    if isinstance(children, Markup):
        return children
    if isinstance(children, (list, tuple)):
        return "".join(_content(c) for c in children)
    return esc(children)


def el(tag: str, *children: Any, **attrs: Any) -> Markup:
    """``<tag attrs>children</tag>``: children and attribute values are escaped unless they
    are :class:`Markup`. ``class_`` gives ``class``; ``None``/``False`` attributes are left
    out; ``True`` gives a bare attribute."""
    parts = [tag]
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        parts.append(name if value is True else f'{name}="{esc(value)}"')
    head = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        return Markup(head)
    return Markup(f"{head}{_content(list(children))}</{tag}>")


def join(*parts: Any) -> Markup:
    return Markup(_content(list(parts)))


def table(header: list[Any], rows: list[list[Any]], class_: str | None = None) -> Markup:
    head = el("thead", el("tr", [el("th", h, scope="col") for h in header]))
    body = el("tbody", [el("tr", [el("td", c) for c in row]) for row in rows])
    return el("table", head, body, class_=class_)


def kv_table(rows: list[tuple[Any, Any]]) -> Markup:
    return el("table", el("tbody", [
        el("tr", el("th", k, scope="row"), el("td", v)) for k, v in rows
    ]), class_="kv")


def sep(items: list[Markup], sep: str) -> Markup:
    return Markup(esc(sep).join(items))
