#!/usr/bin/env python3
"""A tiny stand-in for batond that speaks protocol v1 (docs/protocol.md), for
testing the baton CLI's behaviour where a real daemon cannot be steered:
a lock lost while CMD runs, a daemon that dies, a queued request with a known
holder, errors of every code.

  fake_batond.py SOCKET [--busy NAME]... [--queue-ms MS] [--lose-after S]
                        [--die-after S] [--error CODE] [--no-greeting]

--busy NAME     lock requests for NAME wait (or fail busy with timeout_ms 0,
                timed_out once timeout_ms runs out)
--queue-ms MS   every lock request is queued (interim with a holder) for MS
--lose-after S  S seconds after a grant, send lock_lost for it
--die-after S   S seconds after a grant, exit (the connection closes)
--error CODE    every lock request fails with CODE
--no-greeting   accept connections and say nothing
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--busy", action="append", default=[])
    parser.add_argument("--queue-ms", type=int, default=0)
    parser.add_argument("--lose-after", type=float)
    parser.add_argument("--die-after", type=float)
    parser.add_argument("--error")
    parser.add_argument("--no-greeting", action="store_true")
    args = parser.parse_args()

    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen(16)
    token = [100]
    lock = threading.Lock()

    def send(conn, obj):
        with lock:
            try:
                conn.sendall((json.dumps(obj) + "\n").encode())
            except OSError:
                pass

    def serve(conn):
        if not args.no_greeting:
            send(conn, {"baton": 1, "server": "fake_batond 0.1.0", "pod": "fake-pod",
                        "node": "fake-node", "capabilities": ["lock", "shared", "fencing",
                        "lock_lost", "status"], "limits": {"max_message_bytes": 65536}})
        buffer = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                rid, op = request.get("id"), request.get("op")
                if op == "ping":
                    send(conn, {"id": rid, "ok": True})
                elif op == "status":
                    send(conn, {"id": rid, "ok": True,
                                "server": {"server": "fake_batond 0.1.0", "pod": "fake-pod",
                                           "node": "fake-node", "root": "/data"},
                                "locks": [{"name": "held/one", "holders": [
                                    {"pod": "p2", "node": "n2", "pid": 41, "mode": "exclusive",
                                     "token": 17, "since_ms": int(time.time() * 1000) - 5000,
                                     "local": False}],
                                    "waiters": [{"pod": "fake-pod", "node": "fake-node", "pid": 57,
                                                 "mode": "exclusive", "token": 0,
                                                 "since_ms": int(time.time() * 1000),
                                                 "local": True}]}]})
                elif op == "unlock":
                    send(conn, {"id": rid, "ok": True})
                elif op == "lock":
                    threading.Thread(target=grant, args=(conn, request), daemon=True).start()
                else:
                    send(conn, {"id": rid, "ok": False, "error": "invalid_argument",
                                "message": "unknown op"})

    def grant(conn, request):
        rid, name = request["id"], request["name"]
        timeout_ms = request.get("timeout_ms")
        holder = {"pod": "p2", "node": "n2", "pid": 41, "mode": "exclusive", "token": 17,
                  "since_ms": int(time.time() * 1000) - 65000, "local": False}
        if args.error:
            send(conn, {"id": rid, "ok": False, "error": args.error, "message": "fake " + args.error})
            return
        if name in args.busy:
            if timeout_ms == 0:
                send(conn, {"id": rid, "ok": False, "error": "busy", "message": "held"})
                return
            send(conn, {"id": rid, "queued": True, "name": name, "position": 1, "holder": holder})
            if timeout_ms is None:
                return  # forever
            time.sleep(timeout_ms / 1000)
            send(conn, {"id": rid, "ok": False, "error": "timed_out", "message": "timed out"})
            return
        if args.queue_ms:
            send(conn, {"id": rid, "queued": True, "name": name, "position": 2, "holder": holder})
            time.sleep(args.queue_ms / 1000)
        with lock:
            token[0] += 1
            mine = token[0] if request.get("mode", "exclusive") == "exclusive" else 0
        send(conn, {"id": rid, "ok": True, "name": name, "token": mine, "waited_us": 10})
        if args.lose_after is not None:
            time.sleep(args.lose_after)
            send(conn, {"event": "lock_lost", "name": name, "token": mine,
                        "message": "lock file: Input/output error"})
        if args.die_after is not None:
            time.sleep(args.die_after)
            os._exit(0)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

if __name__ == "__main__":
    main()
