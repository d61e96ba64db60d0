"""Isolation under concurrency (SPEC §5): every reply holds its own request's answers, also when
invalid requests are mixed in, with several shards and three models at once."""

import random
import threading

import requests

from conftest import (
    HTTP_TIMEOUT,
    action_probabilities,
    cb_example,
    cb_lines,
    close,
    features_to_text,
    logistic_features,
    oaa_features,
)

THREADS = 16
REQUESTS_PER_THREAD = 200

INVALID = ["", "   ", "no bar", " |a x:1\n |a y:2", " |a x:1\x00", "save|a x:1"]


def build_plan(reference):
    """Per thread, a list of (model, instances, expected): expected is a list of answers, or
    ("error", index) for a request that must be rejected with 400 naming that index."""
    rng = random.Random(4242)
    plans = []
    for t in range(THREADS):
        plan = []
        for i in range(REQUESTS_PER_THREAD):
            kind = rng.random()
            if kind < 0.1:  # invalid: good examples around one bad one
                n = rng.randint(2, 4)
                instances = [features_to_text(logistic_features(rng)) for _ in range(n)]
                bad = rng.randrange(n)
                instances[bad] = rng.choice(INVALID)
                plan.append(("logistic", instances, ("error", bad)))
            elif kind < 0.2:
                instances = [features_to_text(oaa_features(rng)) for _ in range(rng.randint(1, 3))]
                plan.append(("oaa", instances, [reference.predict("oaa", x) for x in instances]))
            elif kind < 0.3:
                examples = [cb_lines(cb_example(rng, actions=rng.randint(2, 5))) for _ in range(rng.randint(1, 2))]
                plan.append(("cb", examples, [reference.predict("cb", x) for x in examples]))
            else:
                instances = [features_to_text(logistic_features(rng)) for _ in range(rng.randint(1, 4))]
                plan.append(("logistic", instances, [reference.predict("logistic", x) for x in instances]))
        plans.append(plan)
    return plans


def check_reply(model, r, expected) -> str | None:
    if isinstance(expected, tuple):
        if r.status_code != 400:
            return f"invalid request got {r.status_code}: {r.text[:200]!r}"
        message = r.json().get("error", "")
        if f"instance {expected[1]}" not in message:
            return f"error does not name instance {expected[1]}: {message!r}"
        return None
    if r.status_code != 200:
        return f"{r.status_code}: {r.text[:200]!r}"
    got = r.json()["predictions"]
    if len(got) != len(expected):
        return f"{len(got)} predictions for {len(expected)} instances"
    for g, w in zip(got, expected):
        if model == "logistic" and not close(g, w):
            return f"logistic: got {got}, want {expected}"
        if model == "oaa" and g != w:
            return f"oaa: got {got}, want {expected}"
        if model == "cb":
            actions = action_probabilities(g)
            if set(actions) != set(w) or not all(close(actions[a], p) for a, p in w.items()):
                return f"cb: got {g}, want {w}"
    return None


def test_concurrent_clients_each_get_their_own_answers(stack, reference, unharmed):
    plans = build_plan(reference)
    failures: list[str] = []
    lock = threading.Lock()

    def client(t: int) -> None:
        with requests.Session() as session:
            for i, (model, instances, expected) in enumerate(plans[t]):
                try:
                    r = session.post(stack.url(f"/v1/models/{model}:predict"), json={"instances": instances},
                                     timeout=HTTP_TIMEOUT)
                    problem = check_reply(model, r, expected)
                except Exception as error:  # noqa: BLE001 - any failure is a test failure
                    problem = repr(error)
                if problem:
                    with lock:
                        failures.append(f"thread {t} request {i} ({model}): {problem}")

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=240)
    assert not any(th.is_alive() for th in threads), "client threads did not finish"
    assert not failures, f"{len(failures)} of {THREADS * REQUESTS_PER_THREAD} requests wrong:\n" + "\n".join(failures[:20])
    unharmed()
