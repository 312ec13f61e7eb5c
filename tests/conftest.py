"""The suite's own settings."""

from hypothesis import settings

# Timings belong in benchmarks, not in assertions: hypothesis fails an example that takes
# longer than its deadline (200 ms) once and not when replayed, which on a loaded 2-core
# machine is the machine, not the code.
settings.register_profile("netstack", deadline=None)
settings.load_profile("netstack")
