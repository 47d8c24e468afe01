"""A Durable Functions 2.x test app for adversarial tests: an HTTP function that takes long."""

import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="pid", methods=["GET"])
def pid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.route(route="sleep", methods=["GET"])
def sleep(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(float(req.params.get("seconds", "1")))
    return func.HttpResponse("slept")


@app.route(route="generator", methods=["GET"])
def generator(req: func.HttpRequest):  # noqa: ANN201 - a streaming body, which is not served
    yield b"part"
