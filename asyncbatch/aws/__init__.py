"""AWS integrations of asyncbatch, on aioboto3 (the ``aws`` extra: ``pip install -e '.[aws]'``
in a clone of asyncbatch).

Nothing here is imported by ``import asyncbatch``; submodules import aioboto3 when used.
"""

__all__: list[str] = []  # the integrations are its submodules: sqs, s3_import, ...
