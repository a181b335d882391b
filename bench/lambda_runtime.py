"""Runs a Python Lambda handler against the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API), the way
Lambda's own Python runtime does, so AWS's Python rotation templates can be driven and timed by
the same driver, Runtime API server and counting proxy as our rotators (bench/src/template.rs).

usage: lambda_runtime.py TEMPLATE_DIR

The template's code is used as published (not part of this repository). One thing differs from
Lambda: the templates trust the CA file at Lambda's path /etc/pki/tls/cert.pem; here the file
named by BENCH_CA_FILE takes its place, so both sides verify against the same CA.
"""

import importlib
import json
import os
import sys
import urllib.request

CA_PATH = "/etc/pki/tls/cert.pem"


def use_bench_ca():
    ca = os.environ["BENCH_CA_FILE"]
    try:
        import pgdb

        connect = pgdb.connect

        def pg_connect(*args, **kwargs):
            if kwargs.get("sslrootcert") == CA_PATH:
                kwargs["sslrootcert"] = ca
            return connect(*args, **kwargs)

        pgdb.connect = pg_connect
    except ImportError:
        pass
    try:
        import pymysql

        my = pymysql.connect

        def my_connect(*args, **kwargs):
            if (kwargs.get("ssl") or {}).get("ca") == CA_PATH:
                kwargs["ssl"] = dict(kwargs["ssl"], ca=ca)
            return my(*args, **kwargs)

        pymysql.connect = my_connect
    except ImportError:
        pass


def main():
    sys.path.insert(0, sys.argv[1])
    use_bench_ca()
    handler = importlib.import_module("lambda_function").lambda_handler
    base = "http://%s/2018-06-01/runtime/invocation" % os.environ["AWS_LAMBDA_RUNTIME_API"]
    while True:
        with urllib.request.urlopen(base + "/next") as r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.load(r)
        try:
            body, path = json.dumps(handler(event, None)), "response"
        except Exception as e:  # reported to the caller as Lambda reports a handler's error
            body, path = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), "error"
        post = urllib.request.Request(
            "%s/%s/%s" % (base, request_id, path), data=body.encode(), method="POST"
        )
        urllib.request.urlopen(post).close()


if __name__ == "__main__":
    main()
