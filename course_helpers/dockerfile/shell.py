"""Docker's word processing for Dockerfile arguments: quotes, the escape character and ``$VAR`` substitution.

It follows the lexer that BuildKit's Dockerfile frontend (and the classic
builder, which vendors it) uses, because the course must read an instruction
exactly as the builder does: to compute what a ``COPY`` copies, and to print a
step the way ``docker build`` prints it.

* ``'...'`` keeps everything as written; ``"..."`` substitutes ``$`` and lets the
  escape character escape ``"``, ``$`` and itself; elsewhere the escape character
  escapes the next character.
* ``$name``, ``${name}``, ``${name:-default}``, ``${name:+alternative}``,
  ``${name:?message}``.
* Two modes the frontend switches on when it *names* a RUN step: quotes kept as
  written (``raw_quotes``), and unset variables left as written
  (``skip_unset``), so ``RUN echo $HOME`` prints as ``RUN echo $HOME``.
"""
from __future__ import annotations

from typing import Mapping

_SPECIAL = set("@*#?-$!0")


class SubstitutionError(ValueError):
    """A ``${...}`` form Docker refuses (``bad substitution``, ``missing '}'``, ``${X:?}`` unset)."""


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str, raw_quotes: bool, skip_unset: bool):
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.skip_unset = skip_unset

    # --- scanning
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    # --- the grammar
    def process(self, stop: str = "") -> tuple[str, list[str]]:
        """Read up to ``stop`` (or the end): the processed text, and the words it splits into."""
        out: list[str] = []
        words: list[str] = []
        word: list[str] = []
        in_word = False  # a quoted empty string still makes a word

        def end_word() -> None:
            nonlocal in_word
            if in_word:
                words.append("".join(word))
            word.clear()
            in_word = False

        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                end_word()
                return "".join(out), words
            if ch == "$":
                value = self.dollar()
                out.append(value)
                # An unquoted substitution splits on whitespace, as a shell would.
                for i, part in enumerate(value.split()):
                    if i > 0:
                        end_word()
                    word.append(part)
                    in_word = True
                if value and value[-1].isspace():
                    end_word()
                continue
            if ch in "'\"":
                value = self.single() if ch == "'" else self.double()
                out.append(value)
                word.append(value)
                in_word = True
                continue
            ch = self.next()
            if ch == self.escape:
                escaped = self.next()
                if not escaped:
                    break  # an escape character at the very end is dropped
                out.append(escaped)
                word.append(escaped)
                in_word = True
                continue
            out.append(ch)
            if ch.isspace():
                end_word()
            else:
                word.append(ch)
                in_word = True
        if stop:
            raise SubstitutionError("syntax error: missing '}'")
        end_word()
        return "".join(out), words

    def single(self) -> str:
        self.next()
        out = ["'"] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append("'")
                return "".join(out)
            out.append(ch)

    def double(self) -> str:
        self.next()
        out = ['"'] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append('"')
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        chars: list[str] = []
        while self.peek():
            ch = self.peek()
            if not chars and ch.isdigit():
                while self.peek().isdigit():
                    chars.append(self.next())
                return "".join(chars)
            if not chars and ch in _SPECIAL:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            chars.append(self.next())
        return "".join(chars)

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "$" + name
            return value
        self.next()
        if not self.peek():
            raise SubstitutionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise SubstitutionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            modifier = self.next()
            word, _ = self.process(stop="}")
            value, found = self.lookup(name)
            if modifier in "+-":
                if not found and self.skip_unset:
                    return "${" + name + ":" + modifier + word + "}"
                if modifier == "+":
                    return word if value else ""
                return value if value else word
            if modifier == "?":
                if not found:
                    raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
                if not value:
                    raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise SubstitutionError(f"unsupported modifier ({modifier}) in substitution")
        raise SubstitutionError("missing ':' in substitution")


def process_word(text: str, env: Mapping[str, str], escape: str = "\\", *, raw_quotes: bool = False,
                 skip_unset: bool = False) -> str:
    """Substitute variables and remove quotes and escapes (unless ``raw_quotes``), keeping whitespace as written.

    Raises:
        SubstitutionError: a malformed ``${...}`` or an unmatched quote.
    """
    return _Lexer(text, env, escape, raw_quotes, skip_unset).process()[0]


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Split into words as Docker does (whitespace outside quotes), substituting and unquoting each.

    Raises:
        SubstitutionError: a malformed ``${...}`` or an unmatched quote.
    """
    return _Lexer(text, env, escape, False, False).process()[1]
