"""Run the function locally, on moto: ``python run_local.py [FILE.csv]``.

Starts moto's server on 127.0.0.1 (a free port) in this process, makes the bucket, the
table and the topic the SAM template makes (the topic with an SQS queue subscribed, to
read the summary back), puts the file under ``incoming/``, calls ``lambda_handler`` with
the S3 notification Lambda would send, and prints what happened. Nothing leaves the
machine: fake credentials, and ``AWS_ENDPOINT_URL`` pointing at moto.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote_plus

SAMPLE = """student_id,fname,lname,course
A10001,Jack,Reacher,"Advanced Physical Security"
A10002,Sherlock,Holmes,"Science Of Deduction"
A10003,,Poirot,"Little Grey Cells"
A10004,Jane,,=HYPERLINK("http://example.com")
"""

BUCKET = "csv-import-local"
TABLE = "students"


class Context:
    """The part of Lambda's context the importer reads: the time left."""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def run(data: bytes, key: str = "incoming/students.csv", out: Any = print) -> dict[str, Any]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                           "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                           "TABLE_NAME", "TOPIC_ARN")}
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}",
                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "student_id", "KeyType": "HASH"},
                       {"AttributeName": "course", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "student_id", "AttributeType": "S"},
                                  {"AttributeName": "course", "AttributeType": "S"}])
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        topic = sns.create_topic(Name="csv-import")["TopicArn"]
        queue = sqs.create_queue(QueueName="csv-import")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"])
        os.environ.update({"TABLE_NAME": TABLE, "TOPIC_ARN": topic})
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import handler

        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": BUCKET},
                                     "object": {"key": quote_plus(key, safe="/")}}}]}
        response: dict[str, Any] = handler.lambda_handler(event, Context())
        out(json.dumps(response, indent=2))
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        out(f"bucket now holds: {keys}")
        (obj,) = response["objects"]
        if obj["errors_key"]:
            report = s3.get_object(Bucket=BUCKET, Key=obj["errors_key"])["Body"].read()
            out(f"{obj['errors_key']}:\n{report.decode()}")
        messages = sqs.receive_message(QueueUrl=queue).get("Messages", [])
        for message in messages:
            out(f"SNS summary: {json.loads(message['Body'])['Subject']}")
        return response
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.stop()


def main(argv: Optional[list[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    data = Path(args[0]).read_bytes() if args else SAMPLE.encode()
    run(data)


if __name__ == "__main__":
    main()
