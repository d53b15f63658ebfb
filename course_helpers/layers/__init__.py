"""Images and their layers: tags, ``docker image ls``, history, and layer and file diffs read from exports."""
