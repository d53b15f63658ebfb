"""Result objects of a build, shared by the builders, the parsers and explain/predict."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Step:
    """One Dockerfile instruction as a build reported it.

    Attributes:
        index: 1-based position among the instructions of its stage, as Docker
            prints ``[2/4]`` (BuildKit) or ``Step 2/5`` (classic, which counts FROM
            and all stages in one sequence).
        stage: the stage name (``AS build``), or its number as a string when unnamed.
        instruction: the Dockerfile line as written, e.g. ``"COPY . ."``.
        cached: True when the builder reused a cached result.
        seconds: time the step took, as the builder reported it (0.0 when cached).
        layer: the diff id (``sha256:...``) of the layer this step produced, or
            None for metadata-only steps and when unknown.
        size: bytes the step added to the image (0 for metadata-only steps).
    """

    index: int
    stage: str
    instruction: str
    cached: bool
    seconds: float = 0.0
    layer: str | None = None
    size: int = 0


@dataclass
class BuildReport:
    """What one build did.

    Attributes:
        image_id: ``sha256:...`` of the built image.
        tags: the tags given to it.
        builder: ``"buildkit"`` or ``"classic"``.
        seconds: wall-clock time of the whole build.
        log: the builder's full output.
        steps: one :class:`Step` per Dockerfile instruction, FROM included.
        context: the build context directory (for explain/predict).
        dockerfile: path of the Dockerfile used, relative to the context.
    """

    image_id: str
    tags: list[str]
    builder: str
    seconds: float
    log: str
    steps: list[Step] = field(default_factory=list)
    context: str | None = None
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
