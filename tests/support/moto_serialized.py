"""moto_server with one request handled at a time.

moto's DynamoDB conditional writes check and then write without a lock
(moto/dynamodb/models/table.py, Table.put_item), so two concurrent
`PutItem ... attribute_not_exists(pk)` calls on one key can both succeed.
DynamoDB itself applies a conditional write atomically per item. Handling
one request at a time gives the tests DynamoDB's guarantee; connections are
still accepted concurrently (threaded server, keep-alive).

Usage: python moto_serialized.py -H HOST -p PORT   (moto_server's arguments)
"""

import os
import sys
import threading

import moto.server as server

_lock = threading.Lock()
_run_simple = server.run_simple


def _serialized_run_simple(host, port, app, **kwargs):
    def locked(environ, start_response):
        with _lock:
            # Drain the response inside the lock: the work may be lazy.
            return list(app(environ, start_response))

    print(f"serialized moto_server on {host}:{port}", flush=True)
    # The reader stops after that line: nothing more may go to the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    _run_simple(host, port, locked, **kwargs)


server.run_simple = _serialized_run_simple
server.main(sys.argv[1:])
