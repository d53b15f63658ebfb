"""A layer explorer: an image's layers, what each one adds, changes and deletes, and dive's efficiency score.

``explore(image)`` reads the image from the engine's own export (what ``docker
save`` streams), each layer once per machine, and shows it as an ipywidgets view: the
layers with their instructions and sizes; for the layer you click, a tree of
the paths it added, changed and deleted; and the wasted space, computed the way
`dive <https://github.com/wagoodman/dive>`_ computes it, so the two tools give
the same score and the same wasted bytes for the same image.

Reading the export is the slow part (the engine needs a second or two before
the first byte, for any image).  :mod:`.export` reads it and keeps each
layer's scan by diff id, in memory and in the state folder (a diff id names
the layer's content, so a kept scan never goes stale); a second ``explore()``
of the same image, even from a new kernel, skips the export, and so does the
first of an image whose layers the diff or the explorer read before.  See
bench/bench_explorer.py.

Two views of the same layers are computed here, on purpose:

* the *changes* of each layer follow the engine's overlay rules (:mod:`.overlay`):
  ``.wh.NAME`` deletes NAME, ``.wh..wh..opq`` hides everything the layers below
  had in that directory, a regular entry adds or replaces a path;
* the *efficiency* follows dive's own rules (``filetree/efficiency.go``), which
  differ in two corners: an opaque marker is ignored, and a deleted directory is
  weighed by what dive's stacked tree holds under it.  Keeping dive's rules is
  what makes the numbers agree with dive.
"""
from __future__ import annotations

import html
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import docker

from ..engine.client import resolve as _client
from ..engine.session import course_call
from ..errors import CourseError
from ..formatting import format_size, short_id, table_html, table_text
from .export import Member, image_layers
from .images import get_image, history
from .overlay import WHITEOUT, Overlay


# ------------------------------------------------------------------ changes, by the engine's overlay rules


@dataclass(frozen=True)
class Change:
    """One path a layer changed, compared with the layers below it.

    Attributes:
        path: absolute path.
        change: ``added`` (new path), ``modified`` (other content, type, mode or link),
            ``same`` (written again with identical content and mode) or ``deleted``.
        kind: ``file``, ``dir``, ``symlink``, ... (what was there, for a deletion).
        size: bytes of the entry; for a deleted directory, the bytes of everything under it.
        files: 1, or for a deleted directory the number of entries it held.
    """

    path: str
    change: str
    kind: str
    size: int
    files: int = 1

    def cells(self) -> list[str]:
        return [self.change, self.kind, self.path, format_size(self.size)]


CHANGE_ORDER = ("added", "modified", "same", "deleted")


@dataclass
class ExplorerLayer:
    """One layer of an explored image.

    Attributes:
        index: 0-based position, bottom layer first.
        diff_id: ``sha256:...`` of the layer's content.
        instruction: the Dockerfile instruction that made it (``""`` for an imported root filesystem).
        size: bytes of the files the layer holds (the size dive gives a layer).
        origin: ``"base"`` for the base image's layers, ``"dockerfile"`` for the rest.
        changes: what the layer did to the filesystem below it, sorted by path.
    """

    index: int
    diff_id: str
    instruction: str
    size: int
    origin: str
    changes: list[Change] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.instruction or "(the base image's root filesystem)"

    def count(self, change: str) -> int:
        """How many paths the layer ``added``, ``modified``, wrote again the ``same``, or ``deleted``."""
        return sum(1 for c in self.changes if c.change == change)

    def summary(self) -> str:
        """``adds 3 (SIZE), modifies 0, deletes 0``, with the same-content rewrites when there are some."""
        added = sum(c.size for c in self.changes if c.change == "added")
        parts = [f"adds {self.count('added')} ({format_size(added)})", f"modifies {self.count('modified')}"]
        if self.count("same"):
            parts.append(f"writes {self.count('same')} again unchanged")
        parts.append(f"deletes {self.count('deleted')}")
        return ", ".join(parts)

    def text(self, limit: int = 40) -> str:
        lines = [f"{self.label}: {self.summary()}"]
        if self.changes:
            lines.append(table_text(["CHANGE", "KIND", "PATH", "SIZE"], [c.cells() for c in self.changes[:limit]]))
        if len(self.changes) > limit:
            lines.append(f"... and {len(self.changes) - limit} more (see .changes)")
        return "\n".join(lines)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()


def _apply(fs: Overlay, members: list[Member]) -> list[Change]:
    """Apply one layer on top of fs and say what it changed, sorted by path."""
    changes: list[Change] = []
    for step in fs.apply(members):
        if step.member is None:
            if step.lower is not None:  # a whiteout of what the layers below had
                changes.append(Change(step.path, "deleted", step.lower.kind, sum(m.size for m in step.removed),
                                      len(step.removed)))
            continue
        m, lower = step.member, step.lower
        change = "added"
        if lower is not None:
            if lower.kind == "dir" and m.kind == "dir":
                # A folder is listed again whenever something inside it changed: that alone is no change.
                change = "modified" if lower.mode != m.mode else ""
            elif (lower.kind, lower.size, lower.digest, lower.mode, lower.link) == (m.kind, m.size, m.digest,
                                                                                      m.mode, m.link):
                change = "same"
            else:
                change = "modified"
        if change:
            changes.append(Change(m.path, change, m.kind, m.size))
    changes.sort(key=lambda c: c.path)
    return changes


# ------------------------------------------------------------------ efficiency, by dive's rules


class _Node:
    """A node of dive's file tree (filetree/file_node.go): a name, a size, a dir flag and children."""

    __slots__ = ("name", "size", "is_dir", "children")

    def __init__(self, name: str, size: int = 0, is_dir: bool = False):
        self.name = name
        self.size = size
        self.is_dir = is_dir
        self.children: dict[str, _Node] = {}

    def copy(self) -> "_Node":
        twin = _Node(self.name, self.size, self.is_dir)
        twin.children = {k: v.copy() for k, v in self.children.items()}
        return twin

    def total(self) -> int:
        return self.size + sum(child.total() for child in self.children.values())


def _dive_add(root: _Node, path: str, size: int, is_dir: bool) -> None:
    """dive's FileTree.AddPath: missing parents get an empty payload; names under '.wh..wh.' are never added."""
    node = root
    names = [n for n in path.split("/") if n]
    for i, name in enumerate(names):
        child = node.children.get(name)
        if child is None:
            if name.startswith(".wh..wh."):
                return
            child = node.children[name] = _Node(name)
        node = child
        if i == len(names) - 1:
            node.size, node.is_dir = size, is_dir


def _dive_get(root: _Node, path: str) -> _Node | None:
    node: _Node | None = root
    for name in (n for n in path.split("/") if n):
        node = node.children.get(name) if node is not None else None
    return node


def _dive_walk(node: _Node, prefix: str = "") -> Iterator[tuple[str, _Node]]:
    """Every node below ``node`` as (path, node), children before their parent, names in byte order (dive's visit)."""
    for name in sorted(node.children):
        child = node.children[name]
        path = f"{prefix}/{name}"
        yield from _dive_walk(child, path)
        yield path, child


def _dive_path(path: str, node: _Node) -> str:
    # dive drops the whiteout prefix from a leaf's name when it forms the path.
    return posixpath.join(posixpath.dirname(path), node.name[len(WHITEOUT):]) if node.name.startswith(WHITEOUT) \
        else path


def _dive_stack(lower: _Node, upper: _Node) -> None:
    """dive's FileTree.Stack: a whiteout removes its path, every other node's payload is written over."""
    for path, node in _dive_walk(upper):
        if node.name.startswith(WHITEOUT):
            folder = _dive_get(lower, posixpath.dirname(path))
            if folder is not None:
                folder.children.pop(node.name[len(WHITEOUT):], None)
        else:
            _dive_add(lower, path, node.size, node.is_dir)


@dataclass(frozen=True)
class WastedFile:
    """A path that dive counts as wasted: written by two layers or more, or written and then deleted.

    Attributes:
        path: absolute path.
        count: how many layers wrote or deleted it.
        size: bytes of all its copies together (dive's ``sizeBytes``; the deletion weighs nothing).
        layers: indexes of those layers, bottom first.
    """

    path: str
    count: int
    size: int
    layers: tuple[int, ...]


@dataclass(frozen=True)
class Efficiency:
    """dive's verdict on an image (``dive IMAGE --json``: ``efficiencyScore``, ``inefficientBytes``).

    Attributes:
        score: the smallest size each path ever had, summed, over the sizes of every copy of it,
            summed (1.0 when nothing is stored twice or deleted).
        wasted_bytes: bytes of every copy of every wasted path (dive's ``inefficientBytes``).
        files: the wasted paths, biggest first.
    """

    score: float
    wasted_bytes: int
    files: tuple[WastedFile, ...]

    def text(self) -> str:
        return f"efficiency {self.score:.2%}, wasted {format_size(self.wasted_bytes)} (dive's measure)"

    __str__ = text

    def __repr__(self) -> str:
        return self.text()


def dive_efficiency(layers: list[list[Member]]) -> Efficiency:
    """Score an image's layers exactly as dive's ``filetree.Efficiency`` does.

    Each layer is a tree; its leaves (files, empty folders, whiteouts) are
    visited layer by layer.  A path's copies add up; a whiteout weighs the
    folder it deletes in the layers below, or nothing for a file.  A path
    visited twice or more is wasted: all of its copies count.  The score is the
    sum over paths of the smallest copy over the sum of all copies.

    Args:
        layers: the layers' entries, bottom first (see :func:`.export.image_layers`).

    Returns:
        An :class:`Efficiency`.
    """
    trees = []
    for members in layers:
        root = _Node("")
        for m in members:
            _dive_add(root, m.path, m.size, m.kind == "dir")
        trees.append(root)
    seen: dict[str, list[Any]] = {}  # path -> [cumulative, smallest, layers]
    stacked: _Node | None = None
    for index, tree in enumerate(trees):
        below = stacked if stacked is not None else tree  # dive stacks range(0, -1) as layer 0 itself
        for path, node in _dive_walk(tree):
            if node.children:
                continue  # only leaves
            path = _dive_path(path, node)
            size = node.size
            if node.name.startswith(WHITEOUT):
                previous = _dive_get(below, path)
                if previous is None:
                    break  # dive stops visiting this layer at a whiteout of a path it cannot find
                size = previous.total() if previous.is_dir else 0
            data = seen.setdefault(path, [0, -1, []])
            data[0] += size
            data[1] = size if data[1] < 0 else min(data[1], size)
            data[2].append(index)
        if stacked is None:
            stacked = tree.copy()
        _dive_stack(stacked, tree)
    smallest = sum(d[1] for d in seen.values())
    total = sum(d[0] for d in seen.values())
    wasted = [WastedFile(path, len(d[2]), d[0], tuple(d[2])) for path, d in seen.items() if len(d[2]) > 1]
    wasted.sort(key=lambda w: (-w.size, w.path))
    return Efficiency(1.0 if total == 0 else smallest / total, sum(w.size for w in wasted), tuple(wasted))


# ------------------------------------------------------------------ the explorer


@dataclass
class WasteReport:
    """Wasted paths with the instructions that wrote them; ``print()`` it for a table."""

    title: str
    files: list[WastedFile]
    labels: list[str]

    @property
    def wasted_bytes(self) -> int:
        return sum(w.size for w in self.files)

    def rows(self) -> list[list[str]]:
        return [[w.path, str(w.count), format_size(w.size), " | ".join(_short(self.labels[i], 40) for i in w.layers)]
                for w in self.files]

    def text(self) -> str:
        head = f"{self.title}: {format_size(self.wasted_bytes)} in {len(self.files)} path(s)"
        if not self.files:
            return head
        return head + "\n" + table_text(["PATH", "COPIES", "WASTED", "WRITTEN OR DELETED BY"], self.rows())

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return table_html(["PATH", "COPIES", "WASTED", "WRITTEN OR DELETED BY"], self.rows(),
                          title=f"{self.title}: {format_size(self.wasted_bytes)} in {len(self.files)} path(s)",
                          code=True)


#: What a learner types instead: docker has no command that lists a layer's files.
NO_COMMAND = ("No docker command lists what each layer changed: docker image save IMAGE -o image.tar writes "
              "every layer as a tar inside that archive (tar -tvf lists one), and dive IMAGE browses the same.")

_COLOURS = {"added": "#2e7d32", "modified": "#ef6c00", "same": "#757575", "deleted": "#c62828"}
_MARKS = {"added": "+", "modified": "~", "same": "=", "deleted": "-"}

@dataclass(frozen=True)
class NoLayer:
    """What :meth:`LayerExplorer.find` gives for an instruction that made no layer of this image."""

    image: str
    instruction: str
    labels: list[str]

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return (f"No layer of {self.image} was made by {self.instruction}: this engine's builder kept it in the "
                f"image's config alone (Buildah, Podman's builder, does that with WORKDIR; Docker's "
                f"builders give it a layer). Its layers are {self.labels}.")



class Explorer:
    """An image's layers, what each one changed, and dive's efficiency; shows as a widget in a notebook.

    Attributes:
        image: the name it was opened by; image_id: its id.
        layers: one :class:`ExplorerLayer` per layer, bottom first.
        efficiency: dive's score and wasted bytes for the whole image.
        files: the final image's entries, by path (what a container starts with).
        seconds: how long opening took.
        layer_list, detail: the widget's list of layers and the chosen layer's view (once it is shown).
    """

    TREE_ROWS = 1500  # rows one tree view shows at most; the rest are counted under their folder
    FOLDER_ROWS = 60  # entries shown per folder, the biggest first

    def __init__(self, image: str, image_id: str, layers: list[ExplorerLayer], efficiency: Efficiency,
                 files: dict[str, Member], seconds: float):
        self.image = image
        self.image_id = image_id
        self.layers = layers
        self.efficiency = efficiency
        self.files = files
        self.seconds = seconds
        self._trees: dict[int, str] = {}
        self._widget: Any = None
        self.layer_list: Any = None
        self.detail: Any = None
        self.selected = len(layers) - 1 if layers else 0

    # ---- facts

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def find(self, instruction: str) -> "ExplorerLayer | NoLayer":
        """The top-most layer whose instruction starts with ``instruction`` (e.g. ``"COPY"``).

        Returns:
            The layer; or, for a ``WORKDIR`` that made none (Buildah records it in the config
            only), a :class:`NoLayer` that says so.

        Raises:
            CourseError: no layer matches another instruction; the message lists the instructions.
        """
        for layer in reversed(self.layers):
            if layer.instruction.startswith(instruction):
                return layer
        if instruction.split(" ", 1)[0].upper() == "WORKDIR":  # Buildah: in the config, no layer
            return NoLayer(self.image, instruction, [layer.label for layer in self.layers])
        raise CourseError(f"No layer of {self.image} was made by an instruction starting with {instruction!r}: "
                          f"its layers are {[layer.label for layer in self.layers]}.")

    def wasted(self, base: bool = True) -> WasteReport:
        """The wasted paths (dive's list), with the instructions that wrote them.

        Args:
            base: include waste the base image brought with it (False: only paths a
                Dockerfile layer wrote or deleted, which hold on any base).
        """
        files = [w for w in self.efficiency.files if w.size > 0]
        title = "wasted space"
        if not base:
            files = [w for w in files if any(self.layers[i].origin != "base" for i in w.layers)]
            title = "wasted space from the Dockerfile's layers"
        return WasteReport(title, files, [layer.label for layer in self.layers])

    def header(self) -> str:
        return (f"{self.image}  {short_id(self.image_id)}  {format_size(self.size)} in {len(self.layers)} layer(s); "
                f"{self.efficiency.text()}")

    def text(self) -> str:
        rows = [[str(layer.index), format_size(layer.size), layer.origin, _short(layer.label, 70), layer.summary()]
                for layer in self.layers]
        return (self.header() + "\n" + table_text(["LAYER", "SIZE", "ORIGIN", "INSTRUCTION", "CHANGES"], rows)
                + "\n" + NO_COMMAND)

    __str__ = text

    def __repr__(self) -> str:
        return self.text()

    # ---- the tree of one layer's changes

    def tree_html(self, index: int) -> str:
        """The changes of one layer as a folder tree (HTML ``<details>``), cached per layer."""
        if index not in self._trees:
            self._trees[index] = _render_tree(self.layers[index], self.TREE_ROWS, self.FOLDER_ROWS)
        return self._trees[index]

    # ---- the widget

    def _layer_html(self, index: int) -> str:
        layer = self.layers[index]
        head = (f"<p><b>Layer {index}</b> of {len(self.layers) - 1} ({html.escape(layer.origin)}, "
                f"{format_size(layer.size)}): <code>{html.escape(layer.label)}</code><br>"
                f"{html.escape(layer.summary())}</p>")
        legend = " ".join(f"<span style='color:{_COLOURS[c]}'>{_MARKS[c]} {c}</span>" for c in CHANGE_ORDER)
        return (f"{head}<div class='course-explorer-tree' data-layer='{index}' "
                f"style='max-height:28em;overflow:auto;font-family:monospace;font-size:12px;line-height:1.4;"
                f"border:1px solid #ddd;padding:4px'>{self.tree_html(index)}</div><p><small>{legend}</small></p>")

    def select(self, index: int) -> None:
        """Show one layer's changes, as clicking it in the list does (negative indexes count from the top)."""
        if not -len(self.layers) <= index < len(self.layers):
            raise CourseError(f"{self.image} has layers 0 to {len(self.layers) - 1}: pick one of those.")
        index = range(len(self.layers))[index]
        self.selected = index
        if self._widget is not None:
            self.layer_list.value = index  # the observer below renders the tree
        else:
            self.tree_html(index)

    def _on_select(self, change: dict[str, Any]) -> None:
        self.selected = change["new"]
        self.detail.value = self._layer_html(change["new"])

    @property
    def widget(self) -> Any:
        """The ipywidgets view: header, the list of layers, the chosen layer's tree, the wasted paths."""
        if self._widget is None:
            import ipywidgets as widgets

            options = [(f"{layer.index:>2}  {format_size(layer.size):>7}  {_short(layer.label, 100)}", layer.index)
                       for layer in self.layers]
            self.layer_list = widgets.Select(options=options, value=self.selected,
                                             rows=min(max(len(options), 2), 12), layout=widgets.Layout(width="100%"))
            self.layer_list.add_class("course-explorer-layers")
            self.detail = widgets.HTML(self._layer_html(self.selected))
            self.layer_list.observe(self._on_select, names="value")
            waste = self.wasted()
            waste_html = waste._repr_html_() if waste.files else f"<p>{html.escape(waste.text())}</p>"
            head = widgets.HTML(f"<p><b>{html.escape(self.image)}</b> <code>{short_id(self.image_id)}</code>: "
                                f"{format_size(self.size)} in {len(self.layers)} layer(s); "
                                f"<b>{html.escape(self.efficiency.text())}</b>. Click a layer to see what it "
                                "changed.</p>")
            self._widget = widgets.VBox([head, self.layer_list, self.detail, widgets.HTML(waste_html),
                                         widgets.HTML(f"<p><small>{html.escape(NO_COMMAND)}</small></p>")])
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _render_tree(layer: ExplorerLayer, max_rows: int, per_folder: int) -> str:
    """Nested ``<details>`` for the folders, one line per changed path, coloured by change."""
    if not layer.changes:
        return "<i>This layer changes no file (an empty layer, e.g. a WORKDIR that already existed).</i>"
    root: dict[str, Any] = {"kids": {}, "change": None, "n": 0, "bytes": 0}
    for c in layer.changes:
        node = root
        node["n"] += 1
        node["bytes"] += c.size
        for name in c.path.strip("/").split("/"):
            node = node["kids"].setdefault(name, {"kids": {}, "change": None, "n": 0, "bytes": 0})
            node["n"] += 1
            node["bytes"] += c.size
        node["change"] = c
    out: list[str] = []
    budget = [max_rows]

    def line(name: str, node: dict[str, Any]) -> str:
        c: Change | None = node["change"]
        if c is None:
            return html.escape(name)
        extra = f", {c.files} entries" if c.change == "deleted" and c.files > 1 else ""
        text = f"{_MARKS[c.change]} {html.escape(name)}{'/' if c.kind == 'dir' else ''} " \
               f"<small>({c.kind}, {format_size(c.size)}{extra})</small>"
        style = f"color:{_COLOURS[c.change]}" + (";text-decoration:line-through" if c.change == "deleted" else "")
        return f"<span style='{style}'>{text}</span>"

    def walk(node: dict[str, Any], depth: int) -> None:
        kids = sorted(node["kids"].items())
        keep = {name for name, _ in sorted(kids, key=lambda kv: -kv[1]["bytes"])[:per_folder]}
        rest = []
        for name, kid in kids:
            if name not in keep or budget[0] <= 0:
                rest.append(kid)
                continue
            budget[0] -= 1
            indent = f"margin-left:{12 if depth else 0}px"
            if kid["kids"]:
                opened = " open" if depth < 2 or kid["n"] <= 30 else ""
                below = kid["n"] - (kid["change"] is not None)
                out.append(f"<details{opened} style='{indent}'><summary>{line(name, kid)} "
                           f"<small>[{below} below, {format_size(kid['bytes'])}]</small></summary>")
                walk(kid, depth + 1)
                out.append("</details>")
            else:
                out.append(f"<div style='{indent}'>{line(name, kid)}</div>")
        if rest:
            out.append(f"<div style='margin-left:12px;color:#757575'>... and {sum(k['n'] for k in rest)} more "
                       f"({format_size(sum(k['bytes'] for k in rest))})</div>")

    walk(root, 0)
    return "".join(out)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def _instruction(text: str) -> str:
    # history shows a RUN as the shell the builder ran it with; the Dockerfile line is what the learner wrote.
    return "RUN " + text[len("RUN /bin/sh -c "):] if text.startswith("RUN /bin/sh -c ") else text


@course_call("exploring an image's layers")
def explore(image: Any, *, progress: bool = True, client: docker.DockerClient | None = None) -> Explorer:
    """Open an image in the layer explorer: its layers, what each changed, and dive's efficiency score.

    The first open of an image reads the engine's export (a few seconds for
    200 MB); later opens, and images whose layers were read before, come from a cache.

    Args:
        image: tag, id or BuildReport.
        progress: print a line while the export is read.
        client: Docker client (default: the course's).

    Returns:
        An :class:`Explorer`; in a notebook it shows as a widget (click a layer to see its
        file tree), ``print()`` gives a table of the layers.

    Raises:
        CourseError: no such image, or the export broke off.

    Example:
        >>> view = explore("flask-demo:first")
        >>> view.find("COPY").changes[0].path, view.efficiency.score
    """
    started = time.perf_counter()
    cli = _client(client)
    img = get_image(image, cli)

    def announce() -> None:
        print(f"reading the layers of {short_id(img.id)} from the engine's export "
              "(a few seconds; the next time comes from the cache) ...", flush=True)

    read = image_layers([img], client=cli, announce=announce if progress else None)[0]
    layers, diff_ids = read.layers, read.diff_ids
    rows = history(img.id, client=cli).layers
    fs = Overlay()
    explored = []
    for i, members in enumerate(layers):
        row = rows[i] if i < len(rows) else None
        explored.append(ExplorerLayer(
            index=i, diff_id=diff_ids[i], instruction=_instruction(row.created_by) if row else "",
            size=sum(m.size for m in members), origin=row.origin if row else "dockerfile",
            changes=_apply(fs, members)))
    name = image if isinstance(image, str) else (img.tags[0] if img.tags else short_id(img.id))
    return Explorer(name, img.id, explored, dive_efficiency(layers), fs.entries, time.perf_counter() - started)
