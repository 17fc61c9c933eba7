"""Sonic mixes and playlists on the listener's own media server (a Subsonic server): every
client of that server plays them. `run.py` is where the CLI and the served schedule start."""
