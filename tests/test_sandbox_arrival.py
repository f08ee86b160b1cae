"""The sandbox judges politeness by when requests reached the machine, not when it read them."""

from __future__ import annotations

import socket
import time

import requests

from backfill_pipeline.sandbox.arrival import arrival_or_now, stamp_arrivals, stamped_reader


def test_the_arrival_is_the_kernels_stamp_not_the_moment_of_reading():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        assert stamp_arrivals(listener)
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            conn, _ = listener.accept()
            with conn:
                sent = time.time()
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(0.3)  # the server is busy elsewhere before it reads
                raw, reader = stamped_reader(conn, 8192)
                assert reader.readline() == b"GET / HTTP/1.1\r\n"
                read_at = time.time()
                arrived = arrival_or_now(raw)
                assert abs(arrived - sent) < 0.05, arrived - sent
                assert read_at - arrived > 0.25
                reader.close()


def test_without_a_stamp_the_arrival_is_now():
    before = time.time()
    assert before <= arrival_or_now(None) <= time.time()


def test_the_request_log_carries_the_arrival_and_the_handling(sandbox):
    query = "type=CSV&report=districtsummary~3/31/2025~2024-2025"
    requests.get(f"{sandbox.url}/2024-2025/export.aspx?{query}", timeout=10)
    entry = requests.get(f"{sandbox.url}/_sandbox/requests?limit=1", timeout=10).json()["requests"][-1]
    assert entry["t"] <= entry["handled"] < entry["t"] + 5
