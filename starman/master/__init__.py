"""The master process: the pool policy, the worker processes, the listening sockets."""
