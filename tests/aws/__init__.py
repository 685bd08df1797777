"""The AWS integrations on a real moto server: the SQS sink and worker, the S3 CSV import."""
