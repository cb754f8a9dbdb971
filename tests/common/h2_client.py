#!/usr/bin/env python3
"""The HTTP/2 client of tests/e2e_http2.rs: every request as a stream of ONE h2c connection (prior
knowledge, no upgrade), up to 100 streams in flight at once.

    h2_client.py PORT < requests.json > responses.json

requests.json is a list of requests: a header list ([[":method", "GET"], [":path", "/"], ...]), or
{"headers": [...], "data": [HEX, ...], "trailers": [[k, v], ...]} (each data chunk one DATA
frame; trailers end the stream). The answer is one object per request, in order: its response
headers and trailers ({":status": "200", "grpc-status": "0", ...}), or {"error": TEXT}.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events

IN_FLIGHT = 100


def main():
    port = int(sys.argv[1])
    requests = json.load(sys.stdin)
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    pending = list(enumerate(requests))
    pending.reverse()
    in_flight, headers, results = {}, {}, {}
    while pending or in_flight:
        while pending and len(in_flight) < IN_FLIGHT:
            index, request = pending.pop()
            if isinstance(request, list):
                request = {"headers": request}
            data, trailers = request.get("data", []), request.get("trailers", [])
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, [tuple(h) for h in request["headers"]], end_stream=not data and not trailers)
            for i, chunk in enumerate(data):
                conn.send_data(stream, bytes.fromhex(chunk), end_stream=i == len(data) - 1 and not trailers)
            if trailers:
                conn.send_headers(stream, [tuple(h) for h in trailers], end_stream=True)
            in_flight[stream] = index
        sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                headers[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.TrailersReceived):
                headers.setdefault(event.stream_id, {}).update(dict(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in in_flight:
                results[in_flight.pop(event.stream_id)] = headers.pop(event.stream_id, {"error": "no headers"})
            elif isinstance(event, h2.events.StreamReset) and event.stream_id in in_flight:
                results[in_flight.pop(event.stream_id)] = {"error": f"reset {event.error_code}"}
        sock.sendall(conn.data_to_send())
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    json.dump([results.get(i, {"error": "no answer"}) for i in range(len(requests))], sys.stdout)


if __name__ == "__main__":
    main()
