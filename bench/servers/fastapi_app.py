"""Reference server: FastAPI under uvicorn, scoring in-process through pylibvw (`ws.predict`).

    BENCH_MODEL=m.vw BENCH_VW_ARGS='["--link","logistic"]' \
        uvicorn --workers 2 --host 127.0.0.1 --port PORT bench.servers.fastapi_app:app

POST /v1/models/{name}:predict  {"instances": ["<vw line>", ...]} -> {"model", "predictions"}
The handler is `async def`, so `ws.predict` runs on the event loop: one Workspace per worker
process, never used by two threads at once.
"""

import json
import os

import vowpalwabbit
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MODEL = os.environ["BENCH_MODEL"]
VW_ARGS = json.loads(os.environ.get("BENCH_VW_ARGS", "[]"))

ws = vowpalwabbit.Workspace(arg_list=["-i", MODEL, "-t", "--quiet"] + VW_ARGS)
app = FastAPI()


@app.post("/v1/models/{name}:predict")
async def predict(name: str, request: Request):
    instances = (await request.json())["instances"]
    for line in instances:
        if "\n" in line or "|" not in line:
            return JSONResponse({"error": "bad example"}, status_code=400)
    return JSONResponse({"model": name, "predictions": [ws.predict(line) for line in instances]})
