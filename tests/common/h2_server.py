#!/usr/bin/env python3
"""A recording HTTP/2 (h2c) server for tests/e2e_http2.rs, answering like a gRPC server.

    h2_server.py PORT NAME RECORD_FILE [HTTP_STATUS [GRPC_STATUS]]

Every request stream is answered with `:status` HTTP_STATUS (default 200), `content-type:
application/grpc`, `x-served-by: NAME`, one gRPC message (NAME) and the trailer `grpc-status`:
GRPC_STATUS if given, else 0 (13 when HTTP_STATUS is not 200). Each finished request is appended to RECORD_FILE as one JSON
line: {"headers": [[k, v]...], "body": HEX, "trailers": [[k, v]...]}. Runs until killed.
"""
import json
import socket
import sys
import threading

import h2.config
import h2.connection
import h2.events


def grpc_message(payload):
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def serve(sock, name, record, status, grpc_status, lock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = {"headers": event.headers, "body": b"", "trailers": []}
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id]["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    streams[event.stream_id]["trailers"] = event.headers
                elif isinstance(event, h2.events.StreamEnded):
                    request = streams.pop(event.stream_id)
                    with lock, open(record, "a") as out:
                        out.write(json.dumps({"headers": request["headers"], "body": request["body"].hex(),
                                              "trailers": request["trailers"]}) + "\n")
                    conn.send_headers(event.stream_id, [(":status", str(status)), ("content-type", "application/grpc"),
                                                        ("x-served-by", name)])
                    conn.send_data(event.stream_id, grpc_message(name.encode()))
                    conn.send_headers(event.stream_id, [("grpc-status", grpc_status)], end_stream=True)
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def main():
    port, name, record = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    status = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    grpc_status = sys.argv[5] if len(sys.argv) > 5 else ("0" if status == 200 else "13")
    lock = threading.Lock()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve, args=(sock, name, record, status, grpc_status, lock), daemon=True).start()


if __name__ == "__main__":
    main()
