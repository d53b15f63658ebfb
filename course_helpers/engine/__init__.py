"""The engine: finding or starting it, the docker CLI that can run BuildKit, the base image, preflight, and housekeeping."""
