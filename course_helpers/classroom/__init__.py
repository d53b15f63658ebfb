"""A classroom on one machine: JupyterHub, and a Docker engine of their own for every learner.

Each learner is a system user with a rootless Docker engine (Debian's
``dockerd-rootless.sh``), started by the hub when the learner's server starts
and stopped when it stops or is culled.  Where rootless Docker cannot run,
each learner gets a root ``dockerd`` on its own data root, socket and bridge
instead (weaker isolation: see ``engines.py``).  ``./course classroom
up|status|down`` drives it (``commands.py``); ``classroom/`` at the top of the
repository holds the hub's configuration file and the Kubernetes values.

Modules:
    state: where the classroom keeps its files, its settings and secrets.
    learners: system users, their course folder and the disk their engine lives on.
    engines: start, stop and describe a learner's engine.
    hub: the hub's configuration, its process, and its REST API.
    hooks: what the hub runs when a learner's server starts and stops.
    setup: the classroom's own Python environment, the proxy, Debian packages.
    commands: ``up``, ``status`` and ``down``.
"""
