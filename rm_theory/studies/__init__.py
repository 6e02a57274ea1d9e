"""The studies: one module per entry point (`experiments/<name>.py`), each a `run(cfg, runlog)` that
does the work of one run and writes its folder (only studies write run folders)."""

__all__: list[str] = []
