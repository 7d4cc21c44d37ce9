"""The event-delivery half of deploy/bench-events.sh, written from docs/protocol.md (§4 the client's
7/MDP with the TSUNAGU/1 envelope, §10 the event stream).

  event_delivery.py setup DIR [RESOURCES]
      makes an organisation and RESOURCES resources (default 200) through the gateway and writes
      DIR/vacancies.jsonl (resource.vacancies.set payloads over those resources, vacancies changing
      each time) and DIR/create.jsonl (resource.create payloads) for the write-path rows.
  event_delivery.py delivery --subscribers N --rate R --seconds S --payloads DIR/vacancies.jsonl
      starts N subscriber processes (DEALER, TSUNAGU-EVENTS/1, one token), then a paced writer
      (R resource.vacancies.set per second through the gateway, R*S in all, each appending one
      event in its transaction); waits until every subscriber has accounted for every sequence the
      writes were given (EVENT or WITHHELD), bounded in time; prints one JSON line.

Environment: TSUNAGU_CLIENT_ENDPOINT, TSUNAGU_EVENTS_OUT_ENDPOINT, TSUNAGU_TOKEN (a national admin:
it sees every tenant's events, so nothing should be WITHHELD), and for counting the committed
events TSUNAGU_PG_BIN and TSUNAGU_DATABASE_URL (the admin URL).

Every loop is bounded in count and time; every socket is on loopback."""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime

import zmq

MARKER = b"TSUNAGU/1"
EVENTS_HEADER = b"TSUNAGU-EVENTS/1"
MAX_IN_FLIGHT = 256   # the paced writer's bound on outstanding requests
SETTLE_SECONDS = 30   # how long subscribers may take after the writer is done
MAX_UNPARSED = 200_000  # EVENT bodies a subscriber keeps before parsing them


def client_socket():
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(os.environ["TSUNAGU_CLIENT_ENDPOINT"])
    return sock


def send_request(sock, service, op, payload_bytes, request_id, token):
    envelope = {"v": 1, "op": op, "id": request_id, "deadline_ms": 30000, "token": token}
    sock.send_multipart([b"", b"MDPC01", service.encode(), MARKER, json.dumps(envelope).encode(), payload_bytes])


def receive_reply(sock, timeout_ms):
    if not sock.poll(timeout_ms):
        raise TimeoutError(f"no reply within {timeout_ms} ms")
    frames = sock.recv_multipart()
    envelope = json.loads(frames[4])
    return envelope, (json.loads(frames[5]) if len(frames) > 5 else None)


def call(sock, token, service, op, payload):
    request_id = uuid.uuid4().hex
    send_request(sock, service, op, json.dumps(payload).encode(), request_id, token)
    for _ in range(100):
        envelope, body = receive_reply(sock, 30000)
        if envelope.get("id") == request_id:
            if envelope.get("status") != "ok":
                raise RuntimeError(f"{op} failed: {envelope}")
            return body
    raise RuntimeError(f"{op}: no matching reply")


def resource_body(org_id, n):
    return {
        "organization_id": org_id, "name": f"ベンチ用グループホーム{n}", "kana": "べんちようぐるーぷほーむ",
        "category_code": "disability_welfare", "kinds": ["group_home"], "municipality_code": "131016",
        "address": "東京都千代田区九段南1-2-1", "postal_code": "102-8688", "latitude": 35.694, "longitude": 139.753,
        "access_modes": ["stay"], "capacity": 10, "vacancies": 2,
    }


def setup(directory, count):
    token = os.environ["TSUNAGU_TOKEN"]
    sock = client_socket()
    org = call(sock, token, "registry", "organization.create", {"name": "ベンチ用法人", "phone": "03-0000-0000"})
    ids = [call(sock, token, "registry", "resource.create", resource_body(org["id"], n))["id"] for n in range(count)]
    with open(os.path.join(directory, "vacancies.jsonl"), "w") as out:
        # 10 payloads per resource, consecutive ones on different resources (no row waits for
        # another's lock at 16 in flight) and the vacancies different from the last time.
        for round_ in range(10):
            for id_ in ids:
                out.write(json.dumps({"id": id_, "vacancies": round_}) + "\n")
    with open(os.path.join(directory, "create.jsonl"), "w") as out:
        for n in range(count):
            out.write(json.dumps(resource_body(org["id"], n), ensure_ascii=False) + "\n")
    sock.close()


def event_time(text):
    # "2026-12-01T14:25:19.123456Z"; fromisoformat takes the offset form.
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def account(arrivals, delays):
    """Parses the kept EVENT bodies into delays (sequence -> seconds from `time` to arrival)."""
    for received, body in arrivals:
        event = json.loads(body)
        delays.setdefault(event["sequence"], received - event_time(event["time"]))
    arrivals.clear()


def subscriber(index, token, ready, control, results):
    """One subscriber process: SUBSCRIBE, answer each HEARTBEAT with a PING, keep every EVENT with
    its receive time (its sequence and receive time − its `time` are worked out once the writer is
    done); when told the writes' sequence range, report once every sequence in it is accounted for
    (or SETTLE_SECONDS after being told)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.connect(os.environ["TSUNAGU_EVENTS_OUT_ENDPOINT"])
    sock.send_multipart([EVENTS_HEADER, b"SUBSCRIBE", json.dumps({"token": token, "streams": ["registry"]}).encode()])
    arrivals = []      # (receive time, EVENT body) not parsed yet, at most MAX_UNPARSED
    delays = {}        # sequence -> seconds from the event's time to its arrival here
    withheld = set()
    errors = []
    wanted = None      # (first, last) once the writer is done
    give_up = None
    deadline = time.monotonic() + 600  # bound on the whole process
    while time.monotonic() < deadline:
        if wanted is None and control.poll():
            wanted = control.recv()
            give_up = time.monotonic() + SETTLE_SECONDS
        if wanted is not None:
            first, last = wanted
            account(arrivals, delays)
            accounted = sum(1 for s in delays if first <= s <= last) + sum(1 for s in withheld if first <= s <= last)
            if accounted >= last - first + 1 or time.monotonic() > give_up:
                break
        if not sock.poll(20):
            continue
        for _ in range(10_000):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            received = time.time()
            if len(frames) != 3 or frames[0] != EVENTS_HEADER:
                errors.append("malformed message")
                continue
            command = frames[1]
            if command == b"EVENT":
                # Parsed after the run: this process shares two cores with everything measured.
                arrivals.append((received, frames[2]))
                if len(arrivals) >= MAX_UNPARSED:
                    account(arrivals, delays)
            elif command == b"HEARTBEAT":
                sock.send_multipart([EVENTS_HEADER, b"PING", b"{}"])
            elif command == b"WITHHELD":
                body = json.loads(frames[2])
                withheld.update(range(body["from"], body["to"] + 1))
            elif command == b"SUBSCRIBED":
                ready.put(index)
            elif command == b"ERROR":
                errors.append(json.loads(frames[2]).get("code"))
                ready.put(index)
    account(arrivals, delays)
    first, last = wanted if wanted else (1, 0)
    results.put({
        "index": index,
        "delivered": sum(1 for s in delays if first <= s <= last),
        "withheld": sum(1 for s in withheld if first <= s <= last),
        "delays": [d for s, d in delays.items() if first <= s <= last],
        "errors": errors,
    })
    sock.close()


def psql(sql):
    out = subprocess.run([os.path.join(os.environ["TSUNAGU_PG_BIN"], "psql"), "-qtAX", os.environ["TSUNAGU_DATABASE_URL"], "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def paced_writer(token, payloads, rate, seconds):
    """Sends resource.vacancies.set at `rate` per second for `seconds` (rate*seconds in all), at
    most MAX_IN_FLIGHT outstanding; returns (sent, ok, errors, elapsed seconds, late sends)."""
    sock = client_socket()
    total = int(rate * seconds)
    sent = ok = failed = late = 0
    outstanding = 0
    started = time.monotonic()
    give_up = started + seconds + 60
    while (sent < total or outstanding > 0) and time.monotonic() < give_up:
        now = time.monotonic()
        while sent < total and started + sent / rate <= now and outstanding < MAX_IN_FLIGHT:
            if now - (started + sent / rate) > 0.01:
                late += 1
            send_request(sock, "registry", "resource.vacancies.set", payloads[sent % len(payloads)], str(sent), token)
            sent += 1
            outstanding += 1
        next_send = started + sent / rate if sent < total else now + 0.05
        timeout_ms = max(0, int((next_send - time.monotonic()) * 1000))
        if sock.poll(timeout_ms if outstanding < MAX_IN_FLIGHT else 50):
            for _ in range(10_000):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                outstanding -= 1
                if json.loads(frames[4]).get("status") == "ok":
                    ok += 1
                else:
                    failed += 1
    elapsed = time.monotonic() - started
    sock.close()
    return sent, ok, failed, elapsed, late


def percentile(values, p):
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def delivery(args):
    token = os.environ["TSUNAGU_TOKEN"]
    payloads = [line.encode() for line in open(args.payloads).read().splitlines() if line]
    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    pipes, processes = [], []
    for index in range(args.subscribers):
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=subscriber, args=(index, token, ready, theirs, results), daemon=True)
        process.start()
        pipes.append(ours)
        processes.append(process)
    for _ in range(args.subscribers):
        ready.get(timeout=30)
    before = int(psql("SELECT coalesce(max(insert_order), 0) FROM registry.events"))

    sent, ok, failed, elapsed, late = paced_writer(token, payloads, args.rate, args.seconds)

    # The writes' events: committed rows after `before`; wait (bounded) until the publisher has
    # numbered them all, then tell the subscribers which sequences to expect.
    for _ in range(300):
        committed, unnumbered, first, last = psql(
            f"SELECT count(*), count(*) FILTER (WHERE sequence IS NULL), coalesce(min(sequence), 1), coalesce(max(sequence), 0) "
            f"FROM registry.events WHERE insert_order > {before}").split("|")
        if int(unnumbered) == 0:
            break
        time.sleep(0.1)
    committed, first, last = int(committed), int(first), int(last)
    for pipe in pipes:
        pipe.send((first, last))
    reports = [results.get(timeout=SETTLE_SECONDS + 30) for _ in processes]
    for process in processes:
        process.join(10)
    delays = sorted(d for r in reports for d in r["delays"])
    delivered = [r["delivered"] for r in reports]
    withheld = [r["withheld"] for r in reports]
    print(json.dumps({
        "subscribers": args.subscribers, "offered_per_s": args.rate, "sent": sent, "ok": ok, "failed": failed,
        "late_sends": late, "writer_seconds": round(elapsed, 3), "committed": committed,
        "sequences": last - first + 1 if last >= first else 0,
        "delivered_min": min(delivered), "withheld_max": max(withheld),
        "lost_max": max(committed - d - w for d, w in zip(delivered, withheld)),
        "delivered_per_s": round(sum(delivered) / elapsed, 1),
        "p50_ms": round(percentile(delays, 0.50) * 1000, 2), "p99_ms": round(percentile(delays, 0.99) * 1000, 2),
        "max_ms": round(delays[-1] * 1000, 2) if delays else float("nan"),
        "errors": sorted({e for r in reports for e in r["errors"]}),
    }))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("directory")
    s.add_argument("resources", type=int, nargs="?", default=200)
    d = sub.add_parser("delivery")
    d.add_argument("--subscribers", type=int, required=True)
    d.add_argument("--rate", type=float, required=True)
    d.add_argument("--seconds", type=float, required=True)
    d.add_argument("--payloads", required=True)
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.directory, min(max(args.resources, 1), 10_000))
    else:
        if not (1 <= args.subscribers <= 100 and 0 < args.rate <= 100_000 and 0 < args.seconds <= 3600):
            sys.exit("subscribers 1..100, rate 0..100000, seconds 0..3600")
        delivery(args)


if __name__ == "__main__":
    main()
