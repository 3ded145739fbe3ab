"""One worker process: its event loop, its connections, its limits and its scoreboard slot."""
