"""The former path of ``asyncbatch.aws.local``, kept importable."""

from .local import LOCAL_ENV, local_aws, local_aws_process

__all__ = ["LOCAL_ENV", "local_aws", "local_aws_process"]
