"""What the tests share: processes and raw HTTP, the programs' launchers, a forked worker, h1 replay."""
