"""Env files as front ends, workers and backends write them, and the process environment.

The grammar is the common dotenv one (python-dotenv, dotenv for Node, Vite, Next.js, wrangler's
``.dev.vars``), minus variable expansion (``$OTHER`` stays as written):

- blank lines and lines starting with ``#`` are skipped; CRLF and CR line ends are accepted;
- ``NAME=value``, ``NAME = value`` and ``export NAME=value``;
- unquoted values end at the line end or at `` #`` (an inline comment), outer blanks trimmed;
- ``'single quotes'`` are literal; ``"double quotes"`` understand ``\\n \\r \\t \\" \\\\``
  (any other backslash stays); both may span lines; a comment may follow the closing quote.

A line that is none of these is an :class:`EnvFileError` (exit 2) naming the file and line,
never the value: the doctor would rather stop than guess around a secret.

Which variables reach a browser is decided by name, as the bundlers decide it: see
:data:`BROWSER_PREFIXES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sessionkeeper.errors import ConfigError

#: Name prefixes that bundlers inline into browser code (Vite, Next.js, SvelteKit/Astro,
#: Create React App, Expo, Nuxt, Gatsby, Vue CLI). A value under such a name is public.
BROWSER_PREFIXES = (
    "VITE_",
    "NEXT_PUBLIC_",
    "PUBLIC_",
    "REACT_APP_",
    "EXPO_PUBLIC_",
    "NUXT_PUBLIC_",
    "GATSBY_",
    "VUE_APP_",
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
MAX_ENV_FILE_BYTES = 1024 * 1024


class EnvFileError(ConfigError):
    """An env file that cannot be read or parsed. The message names the file and the line only."""


def is_browser_exposed(name: str) -> bool:
    return name.startswith(BROWSER_PREFIXES)


@dataclass(frozen=True)
class EnvVar:
    """One variable and where it was found. ``value`` never appears in a repr."""

    name: str
    value: str = field(repr=False)
    source: str
    line: int | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    @property
    def browser_exposed(self) -> bool:
        return is_browser_exposed(self.name)


@dataclass(frozen=True)
class EnvSource:
    """One env file (or the process environment): its variables, last definition winning."""

    label: str
    variables: tuple[EnvVar, ...]

    @property
    def frontend(self) -> bool:
        """A front end's file: at least one name a bundler would put in the browser."""
        return any(var.browser_exposed for var in self.variables)

    def get(self, name: str) -> EnvVar | None:
        for var in self.variables:
            if var.name == name:
                return var
        return None


class _Scanner:
    """A cursor over the text with a line counter, for the quoted values that span lines."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.source = source

    def fail(self, what: str, line: int | None = None) -> EnvFileError:
        return EnvFileError(f"{self.source}:{line or self.line}: {what}")

    def skip_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        chunk = self.text[self.pos : end]
        self.pos = end
        return chunk

    def end_line(self) -> None:
        if self.pos < len(self.text):  # at a "\n"
            self.pos += 1
            self.line += 1

    def quoted(self, quote: str) -> str:
        start_line = self.line
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\n":
                self.line += 1
            if char == "\\" and quote == '"' and self.pos + 1 < len(self.text):
                follower = self.text[self.pos + 1]
                if follower in _ESCAPES:
                    out.append(_ESCAPES[follower])
                    self.pos += 2
                    continue
            out.append(char)
            self.pos += 1
        raise self.fail("unterminated quoted value", start_line)


def parse_env(text: str, source: str = "<env>") -> list[EnvVar]:
    """The variables of an env file, in order (a name defined twice appears twice)."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    scan = _Scanner(text, source)
    found: list[EnvVar] = []
    while scan.pos < len(text):
        scan.skip_blanks()
        if scan.pos >= len(text) or text[scan.pos] in "#\n":
            scan.rest_of_line()
            scan.end_line()
            continue
        line = scan.line
        if text.startswith("export", scan.pos) and text[scan.pos + 6 : scan.pos + 7] in (" ", "\t"):
            scan.pos += 6
            scan.skip_blanks()
        name = _NAME.match(text, scan.pos)
        if name is None:
            raise scan.fail("expected NAME=value")
        scan.pos = name.end()
        scan.skip_blanks()
        if text[scan.pos : scan.pos + 1] != "=":
            # Not named: the "name" may be a key pasted on a line of its own.
            raise scan.fail("expected NAME=value (no '=' after the first word)")
        scan.pos += 1
        before = scan.pos
        scan.skip_blanks()
        first = text[scan.pos : scan.pos + 1]
        if first in ("'", '"', "`"):
            value = scan.quoted(first)
            scan.skip_blanks()
            trailer = scan.rest_of_line()
            if trailer and not trailer.startswith("#"):
                raise scan.fail(f"unexpected text after the quoted value of {name.group()}")
        else:
            raw = text[before : scan.pos] + scan.rest_of_line()
            comment = re.search(r"(^|[ \t])#", raw)
            value = (raw[: comment.start()] if comment else raw).strip(" \t")
        found.append(EnvVar(name.group(), value, source, line))
        scan.end_line()
    return found


def _deduplicated(variables: list[EnvVar]) -> tuple[EnvVar, ...]:
    last = {var.name: var for var in variables}
    return tuple(var for var in variables if last[var.name] is var)


def read_env_file(path: str) -> EnvSource:
    """Parse one env file. Unreadable, too large or not UTF-8 text is an :class:`EnvFileError`."""
    try:
        file = Path(path)
        if file.stat().st_size > MAX_ENV_FILE_BYTES:
            raise EnvFileError(f"{path}: larger than 1 MiB; not an env file?")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise EnvFileError(f"{path}: not UTF-8 text") from None
    return EnvSource(path, _deduplicated(parse_env(text, path)))


def process_environment(environ: Mapping[str, str]) -> EnvSource:
    """The doctor's own environment, as one more source (labelled ``environment``)."""
    return EnvSource(
        "environment",
        tuple(EnvVar(name, value, "environment") for name, value in sorted(environ.items())),
    )
