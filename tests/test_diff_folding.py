"""A file diff's rendering stays readable and small however many files differ (no engine needed).

The diffs are made of FileChange rows as diff_images() makes them: a reinstall of Python packages
rewrites every .pyc, folder by folder, so a diff of two images can list thousands of paths.
"""
from __future__ import annotations

import json

from course_helpers.layers.diff import FileChange, FileChanges, ImageDiff, LayerInfo

PIP = "RUN /bin/sh -c pip3 install -r requirements.txt"
SITE = "/usr/local/lib/python3.11/dist-packages"


def _diff(files: FileChanges) -> ImageDiff:
    layers = [LayerInfo("sha256:" + "1" * 64, "", 217_000_000, 0, 0)]
    only_a = [LayerInfo("sha256:" + "2" * 64, PIP, 5_810_000, 1, None)]
    only_b = [LayerInfo("sha256:" + "3" * 64, PIP, 5_810_000, None, 1)]
    return ImageDiff("flask-demo:first", "flask-demo:third", "sha256:" + "a" * 64, "sha256:" + "b" * 64,
                     layers, 1, only_a, only_b, files)


def _reinstall(packages: int, modules: int) -> FileChanges:
    rows = [FileChange(f"{SITE}/package{p:03d}/__pycache__/module{m:03d}.cpython-311.pyc", "modified", "file",
                       3070 + m, 3070 + m, PIP)
            for p in range(packages) for m in range(modules)]
    rows.append(FileChange("/usr/src/app/app.py", "modified", "file", 160, 163, "COPY . ."))
    return FileChanges(sorted(rows, key=lambda c: c.path), same_content=188, layers_read=2)


def _stored_size(diff: ImageDiff) -> int:
    """Bytes of the cell output a notebook stores for it: its HTML and its text, as JSON."""
    return len(json.dumps({"text/html": diff._repr_html_(), "text/plain": repr(diff)}))


def test_a_reinstall_folds_into_a_row_per_folder():
    files = _reinstall(packages=10, modules=13)
    groups = files.groups()
    assert len(groups) == 11  # ten folders of .pyc, and app.py on its own
    pyc = groups[0]
    assert pyc.cells()[:4] == ["modified", "file", f"{SITE}/package000/__pycache__/*.pyc", "13"]
    assert groups[-1].cells()[2:4] == ["/usr/src/app/app.py", "1"]  # one file: its own path, no pattern
    text = repr(_diff(files))
    assert "module007" not in text  # the text names folders, not each file
    assert "every file: .files, 131 rows" in text
    page = _diff(files)._repr_html_()
    assert "<details>" in page and "every file (131)" in page
    listed = page[page.index("<details>"):]
    assert listed.count("module0") == 130 and listed.count(f"{SITE}/package003/__pycache__/") == 1


def test_a_large_diff_stores_under_20_kB():
    small = _reinstall(packages=10, modules=13)  # the size of 050's and 110's diffs
    assert _stored_size(_diff(small)) < 20_000
    huge = _reinstall(packages=200, modules=40)  # 8000 files in 200 folders
    size = _stored_size(_diff(huge))
    assert size < 20_000, size
    assert "more in .files" in _diff(huge)._repr_html_()  # the list says where the rest is
    assert len(huge) == 8001  # nothing dropped from the data itself


def test_a_diff_with_few_files_lists_them_all_unfolded():
    files = FileChanges([FileChange("/usr/src/app/app.py", "modified", "file", 160, 163, "COPY . ."),
                         FileChange("/usr/src/app/notes.txt", "added", "file", None, 12, "COPY . .")])
    page = _diff(files)._repr_html_()
    assert "<details>" not in page  # every row is one file already: nothing to fold
    assert "/usr/src/app/notes.txt" in repr(_diff(files)) and "folded" not in repr(_diff(files))
