"""What pip said during a build, and what an image has compared with the package index.

Both read pip's own words: the lines a ``RUN pip3 install`` step printed
(``Downloading ...``, ``Using cached ...``, ``File was already downloaded ...``)
and, inside a container of the image, ``pip3 index versions`` (its ``INSTALLED``
and ``LATEST`` lines).  Nothing here guesses from timings.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..builder.report import BuildReport, Step
from ..engine.session import course_call
from ..errors import CourseError
from ..formatting import table_html, table_text
from .run import run_command

# pip 23-25: "  Downloading Flask-2.3.1-py3-none-any.whl (96 kB)"; newer pips also fetch "....whl.metadata".
_DOWNLOADING = re.compile(r"^\s*Downloading (\S+?)(?: \(([^)]*)\))?\s*$")
_USING_CACHED = re.compile(r"^\s*Using cached (\S+?)(?: \(([^)]*)\))?\s*$")
_ALREADY = re.compile(r"^\s*File was already downloaded (\S+)\s*$")
_INSTALLED = re.compile(r"^\s*Successfully installed (.+)$")


@dataclass(frozen=True)
class PipActivity:
    """Where pip got each package file during one step, in its own words.

    Attributes:
        downloaded: file names pip fetched from the index (``Downloading ...``).
        reused: file names pip took from a cache or a folder of earlier downloads
            (``Using cached ...``, ``File was already downloaded ...``).
        installed: ``name-version`` of what pip installed (``Successfully installed ...``).
        lines: the pip lines these come from, as printed.
    """

    downloaded: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    installed: tuple[str, ...] = ()
    lines: tuple[str, ...] = field(default=(), repr=False)

    def summary(self) -> str:
        """``pip downloaded 7 package files and reused 0`` (what nbval compares)."""
        return f"pip downloaded {len(self.downloaded)} package file(s) and reused {len(self.reused)} from a cache"

    def __str__(self) -> str:
        rows = [[name, "downloaded"] for name in self.downloaded] + [[name, "reused"] for name in self.reused]
        return self.summary() + ("\n" + table_text(["FILE", "WHERE FROM"], rows) if rows else "")

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = [[name, "downloaded from the index"] for name in self.downloaded] + \
               [[name, "reused from the cache"] for name in self.reused]
        return table_html(["file", "where pip got it"], rows, title=self.summary(), code=True)


def pip_activity(step: Step | BuildReport | Iterable[str]) -> PipActivity:
    """Read a pip step's output: which package files pip downloaded and which it reused.

    Args:
        step: a build step (``report.step("pip3 install")``), a whole report (its first step
            that printed pip lines), or the lines themselves.

    Returns:
        A :class:`PipActivity`.  Metadata-only fetches (``....whl.metadata``) are left out.

    Raises:
        CourseError: a report with no step that printed pip output (e.g. the step came from the cache).
    """
    if isinstance(step, BuildReport):
        printed = [s for s in step.steps if any(_DOWNLOADING.match(l) or _USING_CACHED.match(l) or
                                                 _ALREADY.match(l) or _INSTALLED.match(l) for l in s.output)]
        if not printed:
            raise CourseError("No step of this build printed pip output (a cached step prints nothing): "
                              "pass the build in which pip ran.")
        lines: list[str] = printed[0].output
    elif isinstance(step, Step):
        lines = step.output
    else:
        lines = list(step)
    downloaded, reused, installed, kept = [], [], [], []
    for line in lines:
        for pattern, into in ((_DOWNLOADING, downloaded), (_USING_CACHED, reused), (_ALREADY, reused)):
            match = pattern.match(line)
            if match:
                name = match.group(1).rsplit("/", 1)[-1]
                if not name.endswith(".metadata"):
                    into.append(name)
                    kept.append(line.strip())
                break
        else:
            match = _INSTALLED.match(line)
            if match:
                installed += match.group(1).split()
                kept.append(line.strip())
    return PipActivity(tuple(downloaded), tuple(reused), tuple(installed), tuple(kept))


@dataclass(frozen=True)
class PackageVersion:
    """One package in an image: the version installed there and the newest on the index."""

    package: str
    installed: str | None
    latest: str | None

    @property
    def behind(self) -> bool | None:
        """True when the index has a newer version than the image (None when either is unknown)."""
        if self.installed is None or self.latest is None:
            return None
        return self.installed != self.latest


class VersionReport(list):
    """:class:`PackageVersion` rows for one image, as ``pip3 index versions`` saw them inside it."""

    def __init__(self, image: str, rows: Iterable[PackageVersion]):
        super().__init__(rows)
        self.image = image

    @property
    def behind(self) -> list[str]:
        """Packages whose installed version is older than the index's newest."""
        return [r.package for r in self if r.behind]

    def _rows(self) -> list[list[str]]:
        word = {True: "behind the index", False: "the newest", None: "unknown"}
        return [[r.package, r.installed or "(not installed)", r.latest or "?", word[r.behind]] for r in self]

    def __str__(self) -> str:
        return (f"installed in {self.image} vs the newest on the index:\n"
                + table_text(["PACKAGE", "INSTALLED", "INDEX NEWEST", "STATE"], self._rows()))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return table_html(["package", "installed", "newest on the index", "state"], self._rows(),
                          title=f"Installed in {html.escape(self.image)} vs the newest on the index")


@course_call("asking the package index about an image's packages")
def installed_vs_index(image: Any, packages: Iterable[str], *, client: Any = None) -> VersionReport:
    """For each package, the version installed in ``image`` and the newest one on the index.

    Runs ``pip3 index versions PACKAGE`` in a throw-away container of the image, so the
    answer uses the image's own pip, Python and index settings (as ``docker run --rm IMAGE
    pip3 index versions flask`` would).

    Args:
        image: tag, id or BuildReport.
        packages: names, e.g. ``["flask", "werkzeug"]``.
        client: Docker client (default: the course's).

    Returns:
        A :class:`VersionReport`; ``.behind`` lists the packages older than the index's newest.

    Raises:
        CourseError: pip in the image could not reach the index (the message quotes pip).
    """
    names = [p for p in packages]
    if not names:
        raise CourseError("installed_vs_index() needs at least one package name, e.g. ['flask'].")
    script = "; ".join(f"echo '== {n}'; pip3 index versions {n} 2>&1" for n in names)
    result = run_command(image, script, client=client)
    rows = []
    for name, block in zip(names, result.output.split("== ")[1:]):
        installed = re.search(r"INSTALLED:\s*(\S+)", block)
        latest = re.search(r"LATEST:\s*(\S+)", block) or re.search(rf"^{re.escape(name)} \(([^)]+)\)", block,
                                                                   re.M | re.I)
        if latest is None:
            tail = " ".join(block.split("\n", 1)[-1].split())[:300]
            raise CourseError(f"pip in {result.image} could not tell the newest {name} on the index ({tail}): "
                              "check that containers reach the package index (./course preflight).")
        rows.append(PackageVersion(name, installed.group(1) if installed else None, latest.group(1)))
    return VersionReport(result.image, rows)


_HEADERS_PROBE = r'''
import json, sys, urllib.request
name = sys.argv[1]
meta = json.load(urllib.request.urlopen("https://pypi.org/pypi/%s/json" % name, timeout=30))
url = next(u["url"] for u in meta["urls"] if u["filename"].endswith(".whl"))
with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=0-0"}), timeout=30) as resp:
    keep = ("cache-control", "expires", "etag", "last-modified")
    print(json.dumps({"url": url, "headers": {k.lower(): v for k, v in resp.headers.items() if k.lower() in keep}}))
'''


@dataclass(frozen=True)
class IndexCaching:
    """How the package index answered a download, as seen from inside a container.

    Attributes:
        url: the wheel file asked for.
        headers: the caching headers of the answer (``cache-control``, ``expires``, ``etag``,
            ``last-modified``), lower-case names; empty when the answer carried none.
    """

    url: str
    headers: dict[str, str]

    @property
    def cacheable(self) -> bool:
        """Whether pip's HTTP cache can keep such an answer: a lifetime or a validator, and no ``no-store``."""
        control = self.headers.get("cache-control", "").lower()
        if "no-store" in control:
            return False
        return "max-age" in control or any(k in self.headers for k in ("expires", "etag", "last-modified"))

    def __str__(self) -> str:
        got = ", ".join(f"{k}: {v}" for k, v in self.headers.items()) or "no caching header at all"
        if self.cacheable:
            verdict = ("pip's HTTP cache can keep such files, so a cache mount on /root/.cache/pip serves them "
                       "on this network")
        else:
            verdict = ("pip's HTTP cache keeps nothing it is not allowed to, so a cache mount on /root/.cache/pip "
                       "stays empty on this network; keep the wheel files themselves instead")
        return f"{self.url.rsplit('/', 1)[-1]} came with {got}: {verdict}."

    __repr__ = __str__


@course_call("asking the package index how it answers")
def index_caching(image: Any = None, package: str = "flask", *, client: Any = None) -> IndexCaching:
    """Ask PyPI for one of ``package``'s wheels from inside a container and report its caching headers.

    pip's HTTP cache (the folder ``--mount=type=cache,target=/root/.cache/pip`` keeps) stores
    an answer only when its headers allow it.  PyPI's do; a proxy between a container and PyPI
    may drop them.

    Args:
        image: the image to ask from (default: the course's base image).
        package: a package on PyPI with at least one wheel.
        client: Docker client (default: the course's).

    Returns:
        An :class:`IndexCaching`; ``str()`` of it is a sentence with the verdict.

    Raises:
        CourseError: the container could not reach PyPI (the message quotes Python's error).
    """
    import json

    from ..config import BASE_IMAGE

    result = run_command(image or BASE_IMAGE, ["python3", "-c", _HEADERS_PROBE, package], client=client)
    last = result.output.strip().splitlines()[-1] if result.output.strip() else ""
    try:
        answer = json.loads(last)
    except ValueError:
        raise CourseError(f"Could not ask PyPI from inside a container ({last[-300:]}): check that containers "
                          "reach the package index (./course preflight).") from None
    return IndexCaching(answer["url"], dict(answer["headers"]))
