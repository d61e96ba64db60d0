"""Reference server in the product's original design: Flask, one `vw` child per worker over pipes.

    BENCH_MODEL=m.vw BENCH_VW_ARGS='["--link","logistic"]' BENCH_VW=bin/vw \
        gunicorn -w 2 -b 127.0.0.1:PORT bench.servers.flask_app:app

POST /v1/models/<name>:predict  {"instances": ["<vw line>", ...]} -> {"model", "predictions"}
Single-line models only (what the benchmark sends it). Each gunicorn (sync) worker imports this
module after the fork, so each worker starts and owns its own vw process.
"""

import json
import os
import subprocess

from flask import Flask, jsonify, request

MODEL = os.environ["BENCH_MODEL"]
VW_ARGS = json.loads(os.environ.get("BENCH_VW_ARGS", "[]"))
VW = os.environ["BENCH_VW"]

vw = subprocess.Popen([VW, "-i", MODEL, "-t", "-d", "/dev/stdin", "-p", "/dev/stdout", "--quiet"] + VW_ARGS,
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
app = Flask(__name__)


@app.post("/v1/models/<name>:predict")
def predict(name):
    instances = request.get_json(force=True)["instances"]
    for line in instances:
        if "\n" in line or "|" not in line:
            return jsonify(error="bad example"), 400
    vw.stdin.write(("\n".join(instances) + "\n").encode())
    vw.stdin.flush()
    predictions = [float(vw.stdout.readline()) for _ in instances]
    return jsonify(model=name, predictions=predictions)
