# JupyterHub's configuration for the course's classroom (./course classroom up starts the hub with it).
# Everything is decided by `classroom up` and read back here from the classroom folder
# (COURSE_CLASSROOM_DIR); course_helpers/classroom/hub.py says what each setting does.
from course_helpers.classroom.hub import configure
from course_helpers.classroom.state import paths

configure(c, paths())  # noqa: F821 - JupyterHub provides `c`
