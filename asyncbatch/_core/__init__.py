"""The engine: the processor, the run and what it is built from (private).

One file per concept; nothing here is imported by users. The public names are
re-exported by ``asyncbatch/__init__.py``.
"""
