"""A real gRPC peer for tests/e2e_http2.rs: PyPI grpcio (the C-core stack), no code generation.

    grpc_peer.py server PORT NAME RECORD [CODE]   serve echo.Echo until killed
    grpc_peer.py client PORT AUTHORITY            calls from stdin (JSON), results to stdout

The server answers `echo.Echo/Unary` (unary) and `echo.Echo/Collect` (client streaming) through
generic handlers with identity serializers (messages are raw bytes, so no protoc), replies with
its NAME as the message, and appends one JSON line per call its handler ran to RECORD: the
method, the metadata and the messages. With CODE (a gRPC status number) every call fails with it.

The client sends each call of a JSON list `[{"method": "Unary" | "Collect", "messages": [text],
"metadata": [[key, value]]}]` on one channel (one HTTP/2 connection) and prints a JSON list of
`{"code": number, "reply": text}`.
"""
import json
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "echo.Echo"
TIMEOUT_S = 10


def identity(data):
    return data


def serve(port, name, record, code):
    lock = threading.Lock()

    def log(method, context, messages):
        line = {"method": method, "metadata": [[k, v if isinstance(v, str) else v.hex()]
                                               for k, v in context.invocation_metadata()],
                "messages": [m.decode(errors="replace") for m in messages]}
        with lock, open(record, "a") as out:
            out.write(json.dumps(line) + "\n")

    def answer(method, context, messages):
        log(method, context, messages)
        if code:
            status = next(s for s in grpc.StatusCode if s.value[0] == code)
            context.abort(status, f"{name} fails every call")
        return name.encode()

    def unary(request, context):
        return answer("Unary", context, [request])

    def collect(requests, context):
        return answer("Collect", context, list(requests))

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, identity, identity),
        "Collect": grpc.stream_unary_rpc_method_handler(collect, identity, identity),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def client(port, authority):
    calls = json.load(sys.stdin)
    results = []
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        unary = channel.unary_unary(f"/{SERVICE}/Unary", identity, identity)
        collect = channel.stream_unary(f"/{SERVICE}/Collect", identity, identity)
        for call in calls:
            messages = [m.encode() for m in call["messages"]]
            metadata = [tuple(pair) for pair in call.get("metadata", [])]
            try:
                if call["method"] == "Unary":
                    reply = unary(messages[0], metadata=metadata, timeout=TIMEOUT_S)
                else:
                    reply = collect(iter(messages), metadata=metadata, timeout=TIMEOUT_S)
                results.append({"code": 0, "reply": reply.decode()})
            except grpc.RpcError as error:
                results.append({"code": error.code().value[0], "reply": error.details()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"grpc_peer.py: unknown command {sys.argv[1]!r}")
