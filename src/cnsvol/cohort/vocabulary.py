"""The words cnsvol accepts for yes/no values and PFS events in input tables and on the
command line: one vocabulary, case-insensitive, surrounding spaces ignored.

* yes/no (e.g. ``extracns_progression``): ``true``, ``yes``, ``y``, ``1`` / ``false``, ``no``,
  ``n``, ``0``;
* PFS event: the yes/no words, and ``event``, ``progressed``, ``progression``, ``pd``,
  ``died``, ``dead``, ``death`` (progressed or died) / ``censored``, ``censor``, ``alive``,
  ``no event``, ``progression-free`` (censored); spreadsheets' ``1.0`` and ``0.0`` too.
"""

from __future__ import annotations

__all__ = ["EVENT_WORDS", "FALSE_WORDS", "TRUE_WORDS", "parse_event", "parse_yes_no"]

TRUE_WORDS = ("true", "yes", "y", "1")
FALSE_WORDS = ("false", "no", "n", "0")
EVENT_WORDS = {
    True: ("1", "true", "yes", "y", "event", "progressed", "progression", "pd", "died", "dead",
           "death"),
    False: ("0", "false", "no", "n", "censored", "censor", "alive", "no event",
            "progression-free"),
}
_YES_NO = {**dict.fromkeys(TRUE_WORDS, True), **dict.fromkeys(FALSE_WORDS, False)}
_EVENTS = {w: flag for flag, words in EVENT_WORDS.items() for w in words}


def parse_yes_no(value: str) -> bool | None:
    """``True``, ``False``, or ``None`` when ``value`` is none of the yes/no words."""
    return _YES_NO.get(str(value).strip().lower())


def parse_event(value: str) -> bool | None:
    """``True`` (event), ``False`` (censored) or ``None`` when the code is not recognised."""
    text = str(value).strip().lower()
    if text in ("1.0", "0.0"):
        text = text[0]
    return _EVENTS.get(text)
