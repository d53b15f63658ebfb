"""Tools a lesson uses around the engine: workspaces, running an app, pictures, and notebook niceties."""
