"""What start_server and starman both use: the SERVER_STARTER_PORT format, sockets, the option table machinery, signals, processes, sd_notify and value records.

Imports neither program: nothing here imports ``starman`` or a module of ``start_server`` outside ``start_server.common``.
"""
