"""The Personalizer-compatible API (SPEC §9; issue 21), driven by Microsoft's two stock SDKs, unmodified:
`azure-cognitiveservices-personalizer` 0.1.1 (`{Endpoint}/personalizer/v1.0/...`) and `azure-ai-personalizer`
1.0.0b1 (`{Endpoint}/personalizer/...?api-version=2022-09-01-preview`).

The model is trained by the real vw with Personalizer's documented default policy arguments on contexts in the
form Microsoft's SDKs build for local inference (`FromUrl` + `_multi` with `_tag` and `j`). Every ranking is
compared with VW's own `-t --json` PMF for the same mapped context, and every `rewardActionId` with the documented
event-id-seeded draw (test_loop.draw).
"""

from __future__ import annotations

import datetime
import json
import random
import subprocess
import time
from pathlib import Path

import pytest
import requests
from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient
from azure.cognitiveservices.personalizer import PersonalizerClient as LegacyPersonalizerClient
from azure.cognitiveservices.personalizer.models import RankableAction, RankRequest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from msrest.authentication import CognitiveServicesCredentials
from msrest.exceptions import HttpOperationError

from conftest import REFERENCE_VW, Stack, wait_until
from test_loop import draw, vw_pmfs as loop_vw_pmfs

KEY = "pz-test-key-0123456789"
USERS = ["student", "parent", "retiree"]
ACTIONS = ["news", "sports", "music", "travel"]
BEST = {"student": "music", "parent": "news", "retiree": "travel"}
# Personalizer's documented default policy (issue 21 item 5).
POLICY = ["--cb_explore_adf", "--epsilon", "0.2", "--power_t", "0", "-l", "0.001", "--cb_type", "mtr", "-q", "::"]


def context_features(user: str, hour: int) -> list[dict]:
    return [{"User": {"type": user}}, {"Time": {"hour": f"h{hour}"}, "weekend": hour % 2 == 0}]


def actions() -> list[dict]:
    return [{"id": a, "features": [{"Content": {"topic": a}}, {"len": float(i + 1)}]} for i, a in enumerate(ACTIONS)]


def mapped(ctx: list[dict], acts: list[dict], excluded: list[str] = ()) -> dict:
    """SPEC §9's mapping, written independently of the server: what vw must see."""
    return {"FromUrl": ctx, "_multi": [{"_tag": a["id"], "j": a["features"]} for a in acts if a["id"] not in excluded]}


def train(path: Path) -> None:
    rng = random.Random(21)
    log = path.parent / f"{path.stem}.train.dsjson"
    with log.open("w") as f:
        for i in range(600):
            user, hour, k = rng.choice(USERS), rng.randrange(24), rng.randrange(len(ACTIONS))
            f.write(json.dumps({
                "_label_cost": -1 if ACTIONS[k] == BEST[user] else 0, "_label_probability": 0.25, "_label_Action": k + 1,
                "_labelIndex": k, "o": [], "a": [k + 1] + [j + 1 for j in range(len(ACTIONS)) if j != k], "p": [0.25] * 4,
                "c": mapped(context_features(user, hour), actions()), "EventId": f"train{i}",
            }) + "\n")
    subprocess.run([REFERENCE_VW, "--dsjson", *POLICY, "--random_seed", "5", "-d", str(log), "-f", str(path), "--quiet"],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)
    log.unlink()


@pytest.fixture(scope="module")
def pz_models(tmp_path_factory) -> Path:
    """`personalizer` (served at the root), `shop`, `apprentice` and `reset` (at /loops/<name>): the same
    Personalizer-trained model."""
    models = tmp_path_factory.mktemp("pz-models")
    train(models / "personalizer.vw")
    for name in ("shop", "apprentice", "reset"):
        (models / f"{name}.vw").write_bytes((models / "personalizer.vw").read_bytes())
    for name in ("personalizer", "shop", "apprentice", "reset"):
        loop = {"update_interval": "1h", "reward_wait": "1s", "reward_range": [0, 1]}
        if name == "apprentice":
            loop["min_events"] = 5
        (models / f"{name}.json").write_text(json.dumps({"input": "vw_json", "loop": loop}) + "\n")
    return models


@pytest.fixture(scope="module")
def pz_stack(pz_models, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("pz-keys") / "keys"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    s = Stack(pz_models, state_dir=tmp_path_factory.mktemp("pz-state"), extra_args=("--api-key-file", str(key_file))).start()
    yield s
    problems = s.stop()
    assert not problems, "\n".join(problems)


def clients(stack: Stack, key: str = KEY):
    """(0.1.1 client at the server root, 1.0.0b1 client at the root, 1.0.0b1 client at /loops/shop)."""
    root = stack.url("")
    return (LegacyPersonalizerClient(root, CognitiveServicesCredentials(key)),
            PersonalizerClient(root, AzureKeyCredential(key)),
            PersonalizerClient(stack.url("/loops/shop"), AzureKeyCredential(key)))


def vw_pmfs(model: Path, contexts: list[dict], tmp: Path) -> list[list[tuple[int, float]]]:
    """VW's own `-t --json` PMFs of the model file `model` (test_loop.vw_pmfs)."""
    return loop_vw_pmfs(model.parent, contexts, tmp, model=model.name)


def check_answer(answer: dict, event_id: str, acts: list[dict], excluded: list[str], pmf: list[tuple[int, float]], what: str):
    offered = [a["id"] for a in acts if a["id"] not in excluded]
    assert answer["eventId"] == event_id, what
    got = {r["id"]: r["probability"] for r in answer["ranking"]}
    assert sorted(got) == sorted(a["id"] for a in acts), f"{what}: ranking ids {got}"
    for action in excluded:
        assert got[action] == 0, f"{what}: excluded {action} has probability {got[action]}"
    for index, p in pmf:
        assert abs(got[offered[index]] - p) <= 1e-6, f"{what}: {offered[index]} {got[offered[index]]} != VW's {p}"
    assert answer["rewardActionId"] == offered[draw(event_id, pmf)], f"{what}: not the documented draw"


def log_lines(stack: Stack, model: str) -> list[dict]:
    return [json.loads(line) for p in sorted((stack.state_dir / model / "log").glob("e2e-*.dsjson"))
            for line in p.read_text().splitlines() if line.strip()]


def test_rank_with_both_sdks_matches_vws_pmf_and_the_documented_draw(pz_stack, pz_models, tmp_path):
    legacy, modern, shop = clients(pz_stack)
    rng = random.Random(7)
    cases = []
    for i in range(12):
        user, hour = rng.choice(USERS), rng.randrange(24)
        excluded = rng.sample(ACTIONS, rng.randrange(3))
        cases.append((f"pz-rank-{i}", context_features(user, hour), excluded))
    pmfs = vw_pmfs(pz_models / "personalizer.vw", [mapped(c, actions(), ex) for _, c, ex in cases], tmp_path)
    for i, ((event_id, ctx, excluded), pmf) in enumerate(zip(cases, pmfs)):
        if i % 3 == 0:
            request = RankRequest(actions=[RankableAction(id=a["id"], features=a["features"]) for a in actions()],
                                  context_features=ctx, excluded_actions=excluded, event_id=event_id)
            response = legacy.rank(request)
            answer = {"eventId": response.event_id, "rewardActionId": response.reward_action_id,
                      "ranking": [{"id": r.id, "probability": r.probability} for r in response.ranking]}
        else:
            client = modern if i % 3 == 1 else shop
            answer = client.rank({"contextFeatures": ctx, "actions": actions(), "excludedActions": excluded, "eventId": event_id})
        check_answer(answer, event_id, actions(), excluded, pmf, f"case {i}")
    # The same event id always gets the same action; a generated event id is a fresh one.
    again = modern.rank({"contextFeatures": cases[1][1], "actions": actions(), "excludedActions": cases[1][2], "eventId": cases[1][0]})
    check_answer(again, cases[1][0], actions(), cases[1][2], pmfs[1], "repeat")
    generated = modern.rank({"contextFeatures": cases[0][1], "actions": actions()})
    assert generated["eventId"] and generated["eventId"] != cases[0][0]
    # The decisions are logged with the action ids (as `_tag`s in `c`), chosen first in `a`.
    logged = {line["EventId"]: line for line in log_lines(pz_stack, "personalizer") if "c" in line}
    line = logged[cases[1][0]]
    offered = [a["id"] for a in actions() if a["id"] not in cases[1][2]]
    assert [action["_tag"] for action in line["c"]["_multi"]] == offered
    assert offered[line["a"][0] - 1] == again["rewardActionId"]
    assert "pz-rank-2" in {line["EventId"] for line in log_lines(pz_stack, "shop") if "c" in line}


def test_reward_and_deferred_activation_with_both_sdks_are_logged(pz_stack):
    legacy, modern, _ = clients(pz_stack)
    ctx = context_features("student", 9)
    modern.rank({"contextFeatures": ctx, "actions": actions(), "eventId": "pz-deferred-1", "deferActivation": True})
    modern.activate("pz-deferred-1")
    modern.reward("pz-deferred-1", {"value": 1.0})
    legacy.rank(RankRequest(actions=[RankableAction(id=a["id"], features=a["features"]) for a in actions()],
                            context_features=ctx, event_id="pz-deferred-2", defer_activation=True))
    legacy.events.activate("pz-deferred-2")
    legacy.events.reward("pz-deferred-2", 0.5)
    lines = log_lines(pz_stack, "personalizer")
    decisions = {line["EventId"]: line for line in lines if "c" in line}
    for event_id in ("pz-deferred-1", "pz-deferred-2"):
        assert decisions[event_id].get("DeferredAction") is True, decisions[event_id]
    rewards = [(line["EventId"], line["v"]) for line in lines if "v" in line]
    assert ("pz-deferred-1", 1.0) in rewards and ("pz-deferred-2", 0.5) in rewards, rewards
    status = pz_stack.get("/v1/models/personalizer/loop").json()
    assert status["activations"] >= 2 and status["rewards"] >= 2, status


def assert_sdk_error(error: HttpResponseError, status: int, contains: str) -> None:
    assert error.status_code == status, (error.status_code, error.message)
    assert error.error is not None and error.error.code, f"no parsed error code in {error.response.text()!r}"
    assert contains in error.error.message, error.error.message


def test_bad_inputs_get_the_sdks_error_shape_and_the_server_keeps_serving(pz_stack, pz_models, tmp_path):
    legacy, modern, _ = clients(pz_stack)
    admin = PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential(KEY))
    modern.rank({"contextFeatures": context_features("parent", 3), "actions": actions(), "eventId": "pz-bad-1"})
    with pytest.raises(HttpResponseError) as caught:
        modern.reward("pz-bad-1", {"value": 5.0})
    assert_sdk_error(caught.value, 400, "reward_range [0.0, 1.0]")
    with pytest.raises(HttpOperationError) as legacy_caught:
        legacy.events.reward("pz-bad-1", -3.0)
    assert legacy_caught.value.response.status_code == 400
    for body, words in (
        ({"contextFeatures": [], "actions": []}, "non-empty array"),
        ({"actions": actions(), "excludedActions": ACTIONS}, "every action is excluded"),
        ({"actions": actions(), "excludedActions": ["nope"]}, "not an action id"),
        ({"actions": actions() + actions()[:1]}, "given twice"),
        ({"actions": [{"id": "a", "features": [{"_comment": 1}]}]}, "unsupported key"),
        ({"actions": actions(), "contextFeatures": [1]}, "object of features"),
        ({"actions": actions(), "eventId": "a b"}, "eventId"),
    ):
        with pytest.raises(HttpResponseError) as caught:
            modern.rank(body)
        assert_sdk_error(caught.value, 400, words)
    with pytest.raises(HttpResponseError) as caught:
        admin.create_feature_importance("fi-bad", {"name": "bad", "startTime": "2100-01-01T00:00:00Z", "endTime": "2020-01-01T00:00:00Z"})
    assert_sdk_error(caught.value, 400, "range is empty")
    headers = {"Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/json"}
    for path, body in (("/personalizer/v1.0/rank", b"{"), ("/personalizer/events/pz-bad-1/reward", b"[1]")):
        r = pz_stack.post(path, data=body, headers=headers)
        assert r.status_code == 400 and set(r.json()["error"]) == {"code", "message"}, (path, r.status_code, r.text)
    r = pz_stack.post("/loops/nosuch/personalizer/rank", json={"actions": actions()}, headers=headers)
    assert r.status_code == 404 and "nosuch" in r.json()["error"]["message"], r.text
    # Still serving, still VW's answer.
    ctx = context_features("retiree", 5)
    answer = modern.rank({"contextFeatures": ctx, "actions": actions(), "eventId": "pz-bad-after"})
    check_answer(answer, "pz-bad-after", actions(), [], vw_pmfs(pz_models / "personalizer.vw", [mapped(ctx, actions())], tmp_path)[0], "after")


def test_a_wrong_key_is_the_sdks_authentication_error(pz_stack):
    legacy, modern, shop = clients(pz_stack, key="wrong-key")
    body = {"contextFeatures": context_features("student", 1), "actions": actions()}
    for client in (modern, shop):
        with pytest.raises(ClientAuthenticationError):
            client.rank(body)
    with pytest.raises(HttpOperationError) as caught:
        legacy.rank(RankRequest(actions=[RankableAction(id=a["id"], features=a["features"]) for a in actions()]))
    assert caught.value.response.status_code == 401
    r = requests.post(pz_stack.url("/personalizer/rank"), json=body, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "PermissionDenied", r.text
    # The admin routes need the key too.
    admin = PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential("wrong-key"))
    for call in (admin.get_service_configuration, admin.get_policy, admin.get_model_properties,
                 lambda: b"".join(admin.export_model()), lambda: admin.update_policy({"name": "x", "arguments": ""})):
        with pytest.raises(ClientAuthenticationError):
            call()
    for path in ("/personalizer/configurations/service", "/loops/shop/personalizer/model", "/personalizer/v1.0/configurations/policy"):
        assert requests.get(pz_stack.url(path), timeout=30).status_code == 401, path


def test_routes_are_counted_and_nginx_passes_only_their_methods(pz_stack):
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    r = requests.get(pz_stack.url("/personalizer/v1.0/rank"), headers=headers, timeout=30)
    assert r.status_code == 405 and r.headers.get("Allow") == "POST", (r.status_code, r.headers)
    r = requests.post(pz_stack.url("/personalizer/model/properties"), headers=headers, timeout=30)
    assert r.status_code == 405 and r.headers.get("Allow") == "GET", (r.status_code, r.headers)
    assert requests.get(pz_stack.url("/personalizer/nothing"), headers=headers, timeout=30).status_code == 404
    # Multislot needs a --ccb_explore_adf model (test_personalizer_multislot.py): this one says so.
    r = requests.post(pz_stack.url("/personalizer/multislot/rank"), json={"actions": actions(), "slots": [{"id": "s", "baselineAction": "news"}]},
                      headers=headers, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "BadArgument" and "ccb_explore_adf" in r.json()["error"]["message"], r.text
    r = requests.post(pz_stack.url("/personalizer/multislot/events/pz-x/reward"), json={"reward": [{"slotId": "s", "value": 1}]},
                      headers=headers, timeout=30)
    assert r.status_code == 400 and "ccb_explore_adf" in r.json()["error"]["message"], r.text
    r = requests.post(pz_stack.url("/personalizer/logs"), headers=headers, timeout=30)
    assert r.status_code == 405 and r.json()["error"]["code"] == "MethodNotAllowed", r.text
    modern = PersonalizerClient(pz_stack.url(""), AzureKeyCredential(KEY))
    modern.rank({"contextFeatures": context_features("student", 2), "actions": actions(), "eventId": "pz-metrics"})
    modern.reward("pz-metrics", {"value": 1})
    PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential(KEY)).get_policy()
    # The logged events' time span: the first decision logged here up to the reward just sent.
    span = PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential(KEY)).get_log_properties()["dateRange"]
    lines = log_lines(pz_stack, "personalizer")
    assert span == {"from": lines[0]["Timestamp"], "to": lines[-1]["Timestamp"]}, (span, lines[0], lines[-1])
    metrics = pz_stack.get("/metrics").text
    for route, code in (("personalizer_rank", 201), ("personalizer_reward", 204), ("personalizer_configuration", 200)):
        assert f'route="{route}"' in metrics and any(
            f'route="{route}"' in line and f'code="{code}"' in line and 'model="personalizer"' in line
            for line in metrics.splitlines() if line.startswith("vwfcgi_requests_total")), route


def test_service_configuration_round_trip_is_in_force_after_the_reload(pz_stack, pz_models):
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))
    before = admin.get_service_configuration()
    assert before["rewardWaitTime"] == "PT1S" and before["modelExportFrequency"] == "PT1H", before
    assert before["learningMode"] == "Online" and before["rewardAggregation"] == "sum", before
    wanted = {"rewardWaitTime": "PT5S", "modelExportFrequency": "PT2M", "defaultReward": 0.25, "rewardAggregation": "earliest",
              "explorationPercentage": 0.3, "logRetentionDays": 30, "learningMode": "LoggingOnly", "modelRetrainDays": 4,
              "isAutoOptimizationEnabled": False}
    answered = admin.update_service_configuration(wanted)
    for doc in (answered, admin.get_service_configuration()):
        for key, value in wanted.items():
            assert doc[key] == value, (key, doc)
    on_disk = json.loads((pz_models / "shop.json").read_text())
    assert on_disk["input"] == "vw_json"
    loop = on_disk["loop"]
    assert (loop["reward_wait"], loop["update_interval"], loop["default_reward"], loop["reward_aggregation"]) == ("5s", "2m", 0.25, "earliest")
    assert loop["retention"]["log"] == "30d" and loop["reward_range"] == [0, 1], loop

    def in_force():
        settings = pz_stack.get("/v1/models/shop/loop").json()["settings"]
        return settings["reward_wait_seconds"] == 5 and settings["update_interval_seconds"] == 120 and settings
    settings = wait_until(in_force, 30)
    assert settings["default_reward"] == 0.25 and settings["reward_aggregation"] == "earliest", settings
    # explorationPercentage is the served model's epsilon (its .json's vw_args): the smallest probability of a
    # 4-action ranking goes from 0.2/4 to 0.3/4; then back.
    assert on_disk["vw_args"] == ["--epsilon", "0.3"], on_disk
    shop = PersonalizerClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))

    def smallest(event_id: str) -> float:
        answer = shop.rank({"contextFeatures": context_features("student", 4), "actions": actions(), "eventId": event_id})
        return min(r["probability"] for r in answer["ranking"])
    wait_until(lambda: abs(smallest("pz-epsilon") - 0.3 / 4) < 1e-6, 30)
    assert admin.update_service_configuration({"explorationPercentage": 0.2})["explorationPercentage"] == 0.2
    wait_until(lambda: abs(smallest("pz-epsilon-back") - 0.2 / 4) < 1e-6, 30)
    assert json.loads((pz_models / "shop.json").read_text())["vw_args"] == ["--epsilon", "0.2"]
    # ISO 8601 forms the SDKs send, back in the canonical form.
    assert admin.update_service_configuration({"rewardWaitTime": "P0DT0H0M10S", "modelExportFrequency": "P1DT12H"})[
        "modelExportFrequency"] == "P1DT12H"
    assert admin.get_service_configuration()["rewardWaitTime"] == "PT10S"
    for body, words in (
        ({"rewardWaitTime": "10 minutes"}, "ISO 8601"),
        ({"modelExportFrequency": "P1M"}, "ISO 8601"),
        ({"learningMode": "Sometimes"}, "learningMode"),
        ({"rewardAggregation": "average"}, "rewardAggregation"),
        ({"defaultReward": 5}, "default_reward"),
        ({"logRetentionDays": 0}, "logRetentionDays"),
        ({"explorationPercentage": 1.5}, "explorationPercentage"),
    ):
        with pytest.raises(HttpResponseError) as caught:
            admin.update_service_configuration(body)
        assert_sdk_error(caught.value, 400, words)
    assert admin.get_service_configuration()["rewardWaitTime"] == "PT10S"


def test_policy_round_trip_and_a_refused_argument(pz_stack):
    admin = PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential(KEY))
    default = admin.get_policy()
    assert default == {"name": "default", "arguments": " ".join(POLICY)}, default
    mine = {"name": "mine", "arguments": "--cb_explore_adf --epsilon 0.1 --power_t 0 -l 0.001 --cb_type mtr -q ::"}
    assert admin.update_policy(mine) == mine
    assert admin.get_policy() == mine
    with pytest.raises(HttpResponseError) as caught:
        admin.update_policy({"name": "bad", "arguments": "--cb_explore_adf --daemon"})
    assert_sdk_error(caught.value, 400, "--daemon")
    with pytest.raises(HttpResponseError) as caught:
        admin.update_policy({"name": "bad", "arguments": "--no_such_option"})
    assert_sdk_error(caught.value, 400, "--no_such_option")
    assert admin.get_policy() == mine
    assert admin.reset_policy() == default
    assert admin.get_policy() == default


def model_version_of(stack: Stack, model: str) -> str | None:
    return stack.get(f"/v1/models/{model}").json().get("version")


def ranks_like_vw(client, model_file: Path, tmp: Path, prefix: str) -> None:
    cases = [(f"{prefix}-{i}", context_features(USERS[i % 3], i), ACTIONS[:i % 2]) for i in range(6)]
    pmfs = vw_pmfs(model_file, [mapped(c, actions(), ex) for _, c, ex in cases], tmp)
    for (event_id, ctx, excluded), pmf in zip(cases, pmfs):
        answer = client.rank({"contextFeatures": ctx, "actions": actions(), "excludedActions": excluded, "eventId": event_id})
        check_answer(answer, event_id, actions(), excluded, pmf, event_id)


def test_model_export_then_import_serves_the_same_rankings(pz_stack, pz_models, tmp_path):
    root_admin = PersonalizerAdministrationClient(pz_stack.url(""), AzureKeyCredential(KEY))
    shop_admin = PersonalizerAdministrationClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))
    shop = PersonalizerClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))
    exported = b"".join(root_admin.export_model())
    assert exported == (pz_models / "personalizer.vw").read_bytes()
    properties = root_admin.get_model_properties()
    assert properties["creationTime"] and properties["lastModifiedTime"], properties
    # A different model (trained elsewhere, as a user brings it) imported into `shop`, then the export back.
    other = tmp_path / "other.vw"
    subprocess.run([REFERENCE_VW, "--cb_explore_adf", *POLICY[1:], "--json", "-d", "/dev/null", "-f", str(other), "--quiet"],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)
    for model_file, prefix in ((other, "pz-imported"), (pz_models / "personalizer.vw", "pz-reimported")):
        before = model_version_of(pz_stack, "shop")
        shop_admin.import_model(model_file.read_bytes())
        # A reload of the earlier tests' settings may still land first (a new version, the old bytes): wait for these bytes.
        wait_until(lambda: model_version_of(pz_stack, "shop") not in (None, before)
                   and b"".join(shop_admin.export_model()) == model_file.read_bytes(), 60)
        assert b"".join(shop_admin.export_model()) == model_file.read_bytes()
        assert (pz_models / "shop.vw").read_bytes() == model_file.read_bytes()
        ranks_like_vw(shop, model_file, tmp_path, prefix)
    # Not a VW model: refused before it reaches the model directory; the model keeps serving.
    version = model_version_of(pz_stack, "shop")
    with pytest.raises(HttpResponseError) as caught:
        shop_admin.import_model(b"PK\x03\x04 this is a zip archive, not a VW model")
    assert_sdk_error(caught.value, 400, "not a VW model")
    assert model_version_of(pz_stack, "shop") == version
    ranks_like_vw(shop, pz_models / "personalizer.vw", tmp_path, "pz-after-bad-import")


def test_the_loop_learns_through_the_sdk_alone(tmp_path):
    """Three user types, four actions, reward 1 for the user's best action (scripts/simulate_loop.py's rule): with
    rewardWaitTime and modelExportFrequency set through the SDK to seconds, the best-action rate rises."""
    models = tmp_path / "models"
    models.mkdir()
    subprocess.run([REFERENCE_VW, "--cb_explore_adf", "--epsilon", "0.2", "-q", "UC", "--json", "-d", "/dev/null",
                    "-f", str(models / "personalizer.vw"), "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    (models / "personalizer.json").write_text(json.dumps(
        {"input": "vw_json", "loop": {"reward_range": [0, 1], "update_interval": "1h", "min_events": 50}}) + "\n")
    stack = Stack(models, state_dir=tmp_path / "state").start()
    try:
        client = PersonalizerClient(stack.url(""), AzureKeyCredential("no key file"))
        admin = PersonalizerAdministrationClient(stack.url(""), AzureKeyCredential("no key file"))
        admin.update_service_configuration({"rewardWaitTime": "PT1S", "modelExportFrequency": "PT2S", "learningMode": "LoggingOnly"})
        loop = lambda: stack.get("/v1/models/personalizer/loop").json()  # noqa: E731
        wait_until(lambda: loop()["settings"]["update_interval_seconds"] == 2 and loop()["settings"]["learning_mode"] == "logging_only", 30)
        rng = random.Random(3)

        def decide(event_id: str) -> bool:
            user = rng.choice(USERS)
            answer = client.rank({"contextFeatures": context_features(user, 0)[:1], "actions": actions(), "eventId": event_id})
            best = answer["rewardActionId"] == BEST[user]
            client.reward(event_id, {"value": 1.0 if best else 0.0})
            return best

        rates = [sum(decide(f"learn-0-{i}") for i in range(150)) / 150]
        assert rates[0] <= 0.45, rates
        # LoggingOnly: decisions are logged and joined, nothing is learned (three update intervals and more).
        wait_until(lambda: loop()["joined"] >= 140, 30)
        time.sleep(6)
        assert loop()["updates"] == 0 and loop()["learned_version"] is None, loop()
        assert admin.get_service_configuration()["learningMode"] == "LoggingOnly"
        admin.update_service_configuration({"learningMode": "Online"})
        wait_until(lambda: loop()["settings"]["learning_mode"] == "online", 30)
        deadline = time.monotonic() + 90
        while rates[-1] < 0.7 and time.monotonic() < deadline:
            rates.append(sum(decide(f"learn-{len(rates)}-{i}") for i in range(150)) / 150)
        status = stack.get("/v1/models/personalizer/loop").json()
        print(f"\nbest-action rates per 150 decisions: {rates}; loop {status}")
        assert rates[-1] >= 0.7, (rates, status)
        assert status["updates"] >= 1, status
    finally:
        problems = stack.stop()
        assert not problems, "\n".join(problems)


def test_an_action_id_vw_would_read_as_its_save_command_is_refused(pz_stack):
    _, modern, _ = clients(pz_stack)
    with pytest.raises(HttpResponseError) as caught:
        modern.rank({"actions": [{"id": "save_model.vw", "features": []}, {"id": "b", "features": []}]})
    assert_sdk_error(caught.value, 400, "save")


def loop_status(stack: Stack, model: str) -> dict:
    return stack.get(f"/v1/models/{model}/loop").json()


def test_apprentice_serves_and_logs_the_baseline_while_the_trainer_learns(pz_stack, pz_models, tmp_path):
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/apprentice"), AzureKeyCredential(KEY))
    client = PersonalizerClient(pz_stack.url("/loops/apprentice"), AzureKeyCredential(KEY))
    answered = admin.update_service_configuration({"learningMode": "Apprentice"})
    assert answered["learningMode"] == "Apprentice", answered
    assert json.loads((pz_models / "apprentice.json").read_text())["loop"]["learning_mode"] == "apprentice"
    wait_until(lambda: loop_status(pz_stack, "apprentice")["settings"]["learning_mode"] == "apprentice", 30)
    assert admin.get_service_configuration()["learningMode"] == "Apprentice"
    cases = [(f"pz-apprentice-{i}", context_features(USERS[i % 3], i), ACTIONS[:i % 3]) for i in range(9)]
    pmfs = vw_pmfs(pz_models / "apprentice.vw", [mapped(c, actions(), ex) for _, c, ex in cases], tmp_path)
    for (event_id, ctx, excluded), pmf in zip(cases, pmfs):
        answer = client.rank({"contextFeatures": ctx, "actions": actions(), "excludedActions": excluded, "eventId": event_id})
        baseline = next(a for a in ACTIONS if a not in excluded)
        assert answer["rewardActionId"] == baseline, (event_id, answer)
        # The ranking is still the model's: VW's PMF.
        offered = [a for a in ACTIONS if a not in excluded]
        got = {r["id"]: r["probability"] for r in answer["ranking"]}
        for index, p in pmf:
            assert abs(got[offered[index]] - p) <= 1e-6, (event_id, got, pmf)
        client.reward(event_id, {"value": 1.0 if baseline == BEST[USERS[int(event_id.rsplit("-", 1)[1]) % 3]] else 0.0})
    # The native :rank route serves the baseline too.
    r = pz_stack.post("/v1/models/apprentice:rank", json={"event_id": "pz-apprentice-native", "context": mapped(context_features("student", 1), actions())},
                      headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and r.json()["action"] == 0 and r.json()["probability"] == 1, r.text
    # Logged as the baseline (action 1 of the offered ones) with probability 1.
    decisions = {line["EventId"]: line for line in log_lines(pz_stack, "apprentice") if "c" in line}
    for event_id, _, _ in cases:
        assert decisions[event_id]["a"][0] == 1 and decisions[event_id]["p"][0] == 1, decisions[event_id]
        assert sum(decisions[event_id]["p"]) == 1, decisions[event_id]
    # The trainer learns from those decisions (LoggingOnly would not).
    assert admin.update_service_configuration({"modelExportFrequency": "PT1S"})["learningMode"] == "Apprentice"
    status = wait_until(lambda: (s := loop_status(pz_stack, "apprentice"))["updates"] >= 1 and s, 60)
    assert status["learned_version"], status
    # (Every reward here was 0, so the trainer may switch the model to online by itself: see
    # test_apprentice_switches_to_online_when_the_learned_policy_matches_the_baseline.)
    assert admin.update_service_configuration({"learningMode": "Online"})["learningMode"] == "Online"


def pretrained(path: Path, cost) -> None:
    """A `--cb_explore_adf --epsilon 0.2 -q UC` model (vw's default learning rate) trained on 600 uniformly logged
    events of the user type alone, with `cost(user, action)`."""
    rng = random.Random(9)
    log = path.parent / f"{path.stem}.train.dsjson"
    with log.open("w") as f:
        for i in range(600):
            user, k = rng.choice(USERS), rng.randrange(len(ACTIONS))
            f.write(json.dumps({
                "_label_cost": cost(user, ACTIONS[k]), "_label_probability": 0.25, "_label_Action": k + 1, "_labelIndex": k,
                "o": [], "a": [k + 1] + [j + 1 for j in range(len(ACTIONS)) if j != k], "p": [0.25] * 4,
                "c": mapped(context_features(user, 0)[:1], actions()), "EventId": f"pre{i}",
            }) + "\n")
    subprocess.run([REFERENCE_VW, "--dsjson", "--cb_explore_adf", "--epsilon", "0.2", "-q", "UC", "--random_seed", "5",
                    "-d", str(log), "-f", str(path), "--quiet"], check=True, timeout=120, stdin=subprocess.DEVNULL)
    log.unlink()


def test_apprentice_switches_to_online_when_the_learned_policy_matches_the_baseline(tmp_path):
    """Apprentice mode's switch (issue 21 item 3) through the SDK alone. Three user types, four actions; the world
    rewards each user's best action with 1 (scripts/simulate_loop.py's rule). The baseline (the first action, "news")
    is the parent's best only. `imitator` starts from a model that knows the student's and the retiree's best
    actions but takes "travel" for the parent's: while it does, its estimate is below the baseline's (it disagrees
    where the baseline was rewarded), so it stays in Apprentice; the trainer learns "news" for the parent from the
    baseline's decisions, the criterion is met, the service switches to Online by itself and then answers from the
    learned model. `stubborn` (a baseline earning 0.5 everywhere, a model sure another action earns 1) never
    imitates it, and stays in Apprentice."""
    models = tmp_path / "models"
    models.mkdir()
    # What the model was taught: the student's and the retiree's best (cost -1), and "travel" half as good for the parent.
    pretrained(models / "imitator.vw", lambda user, action: (-0.5 if action == "travel" else 0) if user == "parent"
               else (-1 if action == BEST[user] else 0))
    (models / "stubborn.vw").write_bytes((models / "imitator.vw").read_bytes())
    for name in ("imitator", "stubborn"):
        (models / f"{name}.json").write_text(json.dumps(
            {"input": "vw_json", "loop": {"reward_range": [0, 1], "update_interval": "1h", "min_events": 30}}) + "\n")
    stack = Stack(models, state_dir=tmp_path / "state").start()
    try:
        loop = lambda name: stack.get(f"/v1/models/{name}/loop").json()  # noqa: E731
        admin = {n: PersonalizerAdministrationClient(stack.url(f"/loops/{n}"), AzureKeyCredential("no key file")) for n in ("imitator", "stubborn")}
        client = {n: PersonalizerClient(stack.url(f"/loops/{n}"), AzureKeyCredential("no key file")) for n in ("imitator", "stubborn")}
        for name in ("imitator", "stubborn"):
            answered = admin[name].update_service_configuration(
                {"learningMode": "Apprentice", "rewardWaitTime": "PT1S", "modelExportFrequency": "PT1S"})
            assert answered["learningMode"] == "Apprentice", answered
        wait_until(lambda: all(loop(n)["settings"]["learning_mode"] == "apprentice" for n in ("imitator", "stubborn")), 30)
        rng = random.Random(4)
        served: list[tuple[str, bool]] = []  # (event id, answered the baseline)

        def decide(name: str, event_id: str) -> bool:
            user = rng.choice(USERS)
            answer = client[name].rank({"contextFeatures": context_features(user, 0)[:1], "actions": actions(), "eventId": event_id})
            action = answer["rewardActionId"]
            if name == "imitator":
                served.append((event_id, action == "news"))
            reward = (0.5 if action == "news" else 1.0 if action == BEST[user] else 0.0) if name == "stubborn" else float(action == BEST[user])
            client[name].reward(event_id, {"value": reward})
            return action == BEST[user]

        # The first window: the model disagrees with the baseline where it was rewarded (the parent's "news").
        apprentice_rate = sum(decide("imitator", f"im-0-{i}") for i in range(40)) / 40
        first = wait_until(lambda: (loop("imitator")["apprentice"] or {}).get("evaluations", 0) >= 1 and loop("imitator")["apprentice"], 30)
        assert first and not first["met"] and first["events"] >= 30, first
        assert first["learned_reward"] < first["baseline_reward"] and first["imitation"] < 1 and first["switched_at"] is None, first
        assert admin["imitator"].get_service_configuration()["learningMode"] == "Apprentice"
        # Apprentice serves the baseline: the parent's best only.
        assert all(baseline for _, baseline in served) and apprentice_rate <= 0.5, (apprentice_rate, served)
        # Traffic until the service switches by itself (a liveness bound).
        deadline, n = time.monotonic() + 60, 1
        while admin["imitator"].get_service_configuration()["learningMode"] != "Online" and time.monotonic() < deadline:
            for i in range(20):
                decide("imitator", f"im-{n}-{i}")
                decide("stubborn", f"st-{n}-{i}")
            n += 1
        status = loop("imitator")
        assert admin["imitator"].get_service_configuration()["learningMode"] == "Online", status
        switched = status["apprentice"]
        assert switched["met"] and switched["switched_at"] and switched["events"] >= 30, switched
        assert switched["learned_reward"] >= switched["baseline_reward"] and 0 < switched["imitation"] < 1, switched
        assert json.loads((models / "imitator.json").read_text())["loop"]["learning_mode"] == "online"
        wait_until(lambda: loop("imitator")["settings"]["learning_mode"] == "online", 30)
        # The reload the switch causes serves what apprentice learned, not the model file again.
        model = stack.get("/v1/models/imitator").json()
        assert model["origin"] == "learned" and model["learned_events"] >= switched["events"], model
        metrics = stack.get("/metrics").text
        assert any(line.startswith("vwfcgi_loop_apprentice_switches_total") and 'model="imitator"' in line and line.endswith(" 1")
                   for line in metrics.splitlines()), metrics
        # Every answer before the switch was the baseline, logged with probability 1; none after it.
        logged = {line["EventId"]: line for p in sorted((stack.state_dir / "imitator" / "log").glob("e2e-*.dsjson"))
                  for line in map(json.loads, p.read_text().splitlines()) if "c" in line}
        flags = [logged[event_id]["p"][0] == 1 for event_id, _ in served]
        assert flags == sorted(flags, reverse=True), "an apprentice decision after an online one"
        assert all(baseline for (_, baseline), apprentice in zip(served, flags) if apprentice)
        # Online: the learned model answers; the best-action rate rises well above the baseline's third.
        online_rate = sum(decide("imitator", f"im-online-{i}") for i in range(150)) / 150
        print(f"\nbest-action rate: apprentice {apprentice_rate:.2f}, online {online_rate:.2f}; {switched}")
        assert online_rate >= 0.7, (online_rate, switched)
        # `stubborn` never imitates the baseline: evaluated, never met, still Apprentice.
        kept = loop("stubborn")["apprentice"]
        assert kept and kept["evaluations"] >= 1 and not kept["met"] and kept["switched_at"] is None, kept
        assert kept["learned_reward"] < kept["baseline_reward"], kept
        assert admin["stubborn"].get_service_configuration()["learningMode"] == "Apprentice"
    finally:
        problems = stack.stop()
        assert not problems, "\n".join(problems)


def fresh_model(arguments: list[str], path: Path) -> bytes:
    subprocess.run([REFERENCE_VW, *arguments, "-f", str(path), "--quiet"], check=True, timeout=60, stdin=subprocess.DEVNULL)
    return path.read_bytes()


def test_model_reset_serves_a_fresh_model_from_the_current_policy(pz_stack, pz_models, tmp_path):
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/reset"), AzureKeyCredential(KEY))
    client = PersonalizerClient(pz_stack.url("/loops/reset"), AzureKeyCredential(KEY))
    trained = (pz_models / "reset.vw").read_bytes()
    mine = ["--cb_explore_adf", "--epsilon", "0.5", "-q", "::"]
    for policy, name in ((POLICY, "default"), (mine, "mine")):
        if name == "mine":
            admin.update_policy({"name": "mine", "arguments": " ".join(mine)})
        want = fresh_model(policy, tmp_path / f"fresh-{name}.vw")
        assert want != trained
        admin.reset_model()
        # In the model directory at once; served after the watcher's probe and swap (the policy's own .json
        # edit reloads the model too, so the version alone does not say which file serves).
        assert (pz_models / "reset.vw").read_bytes() == want
        wait_until(lambda: b"".join(admin.export_model()) == want, 60)
        ranks_like_vw(client, tmp_path / f"fresh-{name}.vw", tmp_path, f"pz-reset-{name}")
    admin.reset_policy()
    headers = {"Ocp-Apim-Subscription-Key": KEY}
    r = requests.delete(pz_stack.url("/loops/nosuch/personalizer/model"), headers=headers, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound" and "nosuch" in r.json()["error"]["message"], r.text
    r = requests.post(pz_stack.url("/loops/reset/personalizer/model"), headers=headers, timeout=30)
    assert r.status_code == 405, r.text


def test_log_deletion_removes_what_the_loop_no_longer_needs(pz_stack):
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/reset"), AzureKeyCredential(KEY))
    client = PersonalizerClient(pz_stack.url("/loops/reset"), AzureKeyCredential(KEY))
    headers = {"Authorization": f"Bearer {KEY}"}
    joined = loop_status(pz_stack, "reset")["joined"]
    for segment in range(2):
        for i in range(3):
            event_id = f"pz-logs-{segment}-{i}"
            client.rank({"contextFeatures": context_features("parent", i), "actions": actions(), "eventId": event_id})
            client.reward(event_id, {"value": 1.0})
        assert pz_stack.post("/v1/models/reset/loop:rotate", headers=headers).status_code == 202
    wait_until(lambda: (s := loop_status(pz_stack, "reset"))["pending"] == 0 and s["orphans"] == 0 and s["joined"] >= joined + 6, 30)
    log = pz_stack.state_dir / "reset" / "log"
    segments = sorted(p.name for p in log.glob("e2e-*.dsjson"))
    assert len(segments) >= 2, segments
    admin.delete_logs()
    left = sorted(p.name for p in log.glob("e2e-*.dsjson"))
    # The newest segment stays (its sequence number goes on); every older one, read and joined, is gone.
    assert left == segments[-1:], (segments, left)
    span = admin.get_log_properties()["dateRange"]
    lines = log_lines(pz_stack, "reset")
    assert lines[0]["EventId"] == "pz-logs-1-0" and span["from"] == lines[0]["Timestamp"], (span, lines[0])
    # Still serving and logging.
    client.rank({"contextFeatures": context_features("parent", 1), "actions": actions(), "eventId": "pz-logs-after"})
    assert any(line["EventId"] == "pz-logs-after" for line in log_lines(pz_stack, "reset"))
    r = requests.delete(pz_stack.url("/loops/nosuch/personalizer/logs"), headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound", r.text


def joined_rewards(stack: Stack, model: str) -> list[float]:
    files = sorted((stack.state_dir / model / "joined").glob("*.dsjson"), key=lambda p: int(p.stem))
    return [-json.loads(line)["_label_cost"] for p in files for line in p.read_text().splitlines() if line.strip()]


def rank_and_reward(stack: Stack, prefix: str, seed: int, events: int = 40) -> None:
    """`events` ranks through the SDK of model shop, each rewarded 1 when it chose the user's best action, then waits
    until they are joined."""
    client = PersonalizerClient(stack.url("/loops/shop"), AzureKeyCredential(KEY))
    rng = random.Random(seed)
    joined = loop_status(stack, "shop")["joined"]
    for i in range(events):
        user = rng.choice(USERS)
        answer = client.rank({"contextFeatures": context_features(user, i % 24), "actions": actions(), "eventId": f"{prefix}-{i}"})
        client.reward(f"{prefix}-{i}", {"value": 1.0 if answer["rewardActionId"] == BEST[user] else 0.0})
    wait_until(lambda: (s := loop_status(stack, "shop"))["pending"] == 0 and s["joined"] >= joined + events, 60)


def test_policy_optimization_through_the_sdk_finds_grid_settings_that_apply(pz_stack):
    """`enablePolicyOptimization` (issue 22): the 16-setting grid around the model's policy is evaluated, the winner
    (highest lower bound of its IPS interval) comes back as `optimalPolicy` and as an `OfflineExperimentation`
    policy, its arguments pass the allowlist, and applyFromEvaluation makes it the model's policy."""
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))
    rank_and_reward(pz_stack, "pz-opt", seed=23)
    start, end = "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
    times = {"start_time": datetime.datetime(2020, 1, 1), "end_time": datetime.datetime(2100, 1, 1)}
    base = admin.get_policy()["arguments"]
    admin.create_evaluation("ev-opt", {"name": "search", "startTime": start, "endTime": end, "enablePolicyOptimization": True})
    # One evaluation at a time per model: a second one while the grid runs is refused (unless it already ended).
    try:
        admin.create_evaluation("ev-opt-2", {"name": "second", "startTime": start, "endTime": end})
        admin.delete_evaluation("ev-opt-2")
    except ResourceExistsError as busy:
        assert_sdk_error(busy, 409, "one runs at a time")
    done = wait_until(lambda: (e := admin.get_evaluation("ev-opt", **times))["status"] != "Running" and e, 180)
    assert done["status"] == "Succeeded", done
    values = done["content"]["value"]
    assert [v["policySource"] for v in values] == ["Online", "Baseline", "Random", "OfflineExperimentation"], values
    optimized = values[-1]
    assert done["optimalPolicy"] == optimized["arguments"] and optimized["name"] == "Optimized", done
    assert " --cb_type " in optimized["arguments"] and " -l " in optimized["arguments"], optimized
    low, high = optimized["summary"]["confidenceInterval"]
    assert low <= optimized["summary"]["expectedReward"] <= high
    blow, bhigh = optimized["summary"]["bernsteinConfidenceInterval"]
    assert blow <= low and high <= bhigh, optimized["summary"]
    # The grid is around the model's policy: its options other than --cb_type and the learning rate are kept.
    tokens = base.split()
    assert "--cb_explore_adf" in optimized["arguments"].split(), (base, optimized)
    if "--epsilon" in tokens:
        assert f"--epsilon {tokens[tokens.index('--epsilon') + 1]}" in optimized["arguments"], (base, optimized)
    # The server's /metrics carries the model's last succeeded evaluation, as `vwfcgi evaluate --metrics-file` writes it.
    from prometheus_client.parser import text_string_to_metric_families
    exposition = requests.get(pz_stack.url("/metrics"), timeout=30).text
    samples = {(s.name, s.labels.get("model"), s.labels.get("policy"), s.labels.get("estimator"), s.labels.get("bound")): s.value
               for family in text_string_to_metric_families(exposition) for s in family.samples}
    assert samples[("vwfcgi_evaluation_estimate", "shop", "Optimized", "ips", "point")] == optimized["summary"]["expectedReward"]
    assert samples[("vwfcgi_evaluation_estimate", "shop", "Optimized", "ips", "lower")] == low
    assert samples[("vwfcgi_evaluation_events", "shop", None, None, None)] == done["content"]["events"]
    admin.apply_from_evaluation({"evaluationId": "ev-opt", "policyName": "Optimized"})
    assert admin.get_policy() == {"name": "Optimized", "arguments": optimized["arguments"]}
    admin.reset_policy()
    admin.delete_evaluation("ev-opt")


def test_evaluations_through_the_sdk_create_poll_read_list_delete(pz_stack):
    admin = PersonalizerAdministrationClient(pz_stack.url("/loops/shop"), AzureKeyCredential(KEY))
    rank_and_reward(pz_stack, "pz-eval", seed=22)
    rewards = joined_rewards(pz_stack, "shop")
    start, end = "2020-01-01T00:00:00Z", "2100-01-01T00:00:00Z"
    policy = {"name": "greedier", "arguments": "--cb_explore_adf --epsilon 0.05 -q ::"}
    admin.create_evaluation("ev-1", {"name": "first", "startTime": start, "endTime": end, "policies": [policy]})
    times = {"start_time": datetime.datetime(2020, 1, 1), "end_time": datetime.datetime(2100, 1, 1)}
    done = wait_until(lambda: (e := admin.get_evaluation("ev-1", **times))["status"] != "Running" and e, 120)
    assert done["status"] == "Succeeded", done
    assert done["name"] == "first" and done["id"] == "ev-1" and done["evaluationType"] == "Manual", done
    results = {v["name"]: v for v in done["content"]["value"]}
    assert [v["policySource"] for v in done["content"]["value"]] == ["Online", "Baseline", "Random", "Custom"], done
    assert results["greedier"]["arguments"] == policy["arguments"]
    assert done["content"]["events"] == len(rewards), (done["content"]["events"], len(rewards))
    online = results["Online"]["summary"]
    total = 0.0
    for r in rewards:
        total += r
    assert online["expectedReward"] == total / len(rewards), (online, total / len(rewards))
    for v in done["content"]["value"]:
        low, high = v["summary"]["confidenceInterval"]
        assert low <= v["summary"]["expectedReward"] <= high, v
        assert v["timeseries"]["data"], v
    listed = {e["id"]: e for e in admin.list_evaluations()}
    assert listed["ev-1"]["status"] == "Succeeded" and "content" not in listed["ev-1"], listed
    # An id in use, a refused option, an empty range, an unknown id.
    with pytest.raises(ResourceExistsError) as exists:
        admin.create_evaluation("ev-1", {"name": "again", "startTime": start, "endTime": end})
    assert_sdk_error(exists.value, 409, "ev-1")
    # A model keeps at most 100 evaluation documents: one client cannot fill the disk with them.
    kept = pz_stack.state_dir / "shop" / "evaluations"
    planted = [kept / f"planted-{i}.json" for i in range(100 - len(list(kept.glob("*.json"))))]
    for path in planted:
        path.write_text((kept / "ev-1.json").read_text())
    try:
        with pytest.raises(ResourceExistsError) as full:
            admin.create_evaluation("ev-full", {"name": "one too many", "startTime": start, "endTime": end})
        assert_sdk_error(full.value, 409, "the most it keeps (100)")
        # The documents count against the state budget (/loop and vwfcgi_state_bytes{kind="personalizer"}).
        documents = sum(path.stat().st_size for path in kept.glob("*.json"))
        counted = wait_until(lambda: pz_stack.get("/v1/models/shop/loop").json()["state_bytes"].get("personalizer", 0) >= documents,
                             10, step=0.2)
        assert counted, (documents, pz_stack.get("/v1/models/shop/loop").json()["state_bytes"])
    finally:
        for path in planted:
            path.unlink()
    for body, words in (
        ({"name": "bad", "startTime": start, "endTime": end, "policies": [{"name": "p", "arguments": "--cb_explore_adf --daemon"}]}, "--daemon"),
        ({"name": "bad", "startTime": end, "endTime": start}, "range is empty"),
        ({"name": "bad", "startTime": "yesterday", "endTime": end}, "startTime"),
        ({"name": "bad", "startTime": start, "endTime": end, "enablePolicyOptimization": "yes"}, "must be a boolean"),
    ):
        with pytest.raises(HttpResponseError) as caught:
            admin.create_evaluation("ev-bad", body)
        assert_sdk_error(caught.value, 400, words)
    # An evaluated policy becomes the model's policy; the logging, baseline and random ones are no learning settings.
    admin.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "greedier"})
    assert admin.get_policy() == policy
    with pytest.raises(HttpResponseError) as caught:
        admin.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "Online"})
    assert_sdk_error(caught.value, 400, "not learning settings")
    with pytest.raises(ResourceNotFoundError) as missing:
        admin.apply_from_evaluation({"evaluationId": "ev-1", "policyName": "nosuch"})
    assert_sdk_error(missing.value, 404, "nosuch")
    with pytest.raises(ResourceNotFoundError) as missing:
        admin.apply_from_evaluation({"evaluationId": "ev-none", "policyName": "greedier"})
    assert_sdk_error(missing.value, 404, "ev-none")
    with pytest.raises(HttpResponseError) as caught:
        admin.apply_from_evaluation({"evaluation": "ev-1"})
    assert_sdk_error(caught.value, 400, "evaluationId")
    admin.reset_policy()
    with pytest.raises(ResourceNotFoundError) as missing:
        admin.get_evaluation("ev-none", **times)
    assert_sdk_error(missing.value, 404, "ev-none")
    admin.delete_evaluation("ev-1")
    with pytest.raises(ResourceNotFoundError):
        admin.get_evaluation("ev-1", **times)
    with pytest.raises(ResourceNotFoundError):
        admin.delete_evaluation("ev-1")
    assert "ev-1" not in {e["id"] for e in admin.list_evaluations()}
    r = requests.post(pz_stack.url("/loops/shop/personalizer/evaluations/ev-2"), headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30)
    assert r.status_code == 405 and r.json()["error"]["code"] == "MethodNotAllowed", r.text
    r = requests.get(pz_stack.url("/loops/shop/personalizer/evaluations/.hidden"), headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30)
    assert r.status_code == 400 and "evaluation id" in r.json()["error"]["message"], r.text
    r = requests.get(pz_stack.url("/loops/nosuch/personalizer/evaluations"), headers={"Ocp-Apim-Subscription-Key": KEY}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound", r.text
    # Feature importances (SPEC §10 over §9): the serving model's weights over the joined events, as VW's own
    # --invert_hash names them, by magnitude.
    admin.create_feature_importance("fi-1", {"name": "weights", "startTime": start, "endTime": end})
    fi = wait_until(lambda: (f := admin.get_feature_importance("fi-1"))["status"] != "Running" and f, 120)
    assert fi["status"] == "Succeeded" and fi["name"] == "weights" and fi["id"] == "fi-1", (fi.get("description"), fi)
    scores = fi["featureScores"]
    assert scores and [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True), scores[:5]
    assert all(s["score"] >= 0 and s["namespace"] == s["featureName"].split("^")[0].split("*")[0] or "*" in s["featureName"]
               for s in scores), scores[:5]
    assert any(s["featureName"] == "Constant" for s in scores), [s["featureName"] for s in scores][:20]
    assert [f["id"] for f in admin.list_feature_importances()] == ["fi-1"]
    with pytest.raises(ResourceExistsError) as exists:
        admin.create_feature_importance("fi-1", {"name": "again", "startTime": start, "endTime": end})
    assert_sdk_error(exists.value, 409, "fi-1")
    with pytest.raises(HttpResponseError) as caught:
        admin.create_feature_importance("fi-2", {"name": "p", "startTime": start, "endTime": end, "policies": []})
    assert_sdk_error(caught.value, 400, "serving model")
    admin.delete_feature_importance("fi-1")
    with pytest.raises(ResourceNotFoundError):
        admin.get_feature_importance("fi-1")
    assert list(admin.list_feature_importances()) == []
