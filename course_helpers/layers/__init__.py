"""Images and their layers: tags, ``docker image ls``, history rows mapped to layers, and layer and file diffs read from exports."""
