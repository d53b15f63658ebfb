"""The Dockerfile and its context: the one reader, ``.dockerignore`` matching, and snapshots of what a build sends."""
