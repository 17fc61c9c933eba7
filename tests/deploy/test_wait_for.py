"""deploy/kubernetes/base/wait_for.py: the ingest's wait for every Qdrant node and the trigger
that resumes the neighbour-list rebuild once the ingest Job completes. Its logic with stand-ins,
its HTTP with a local server that answers as Qdrant and the Kubernetes API do."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base" / "wait_for.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soundalike_k8s_wait_for", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wait_for = load_script()


def cluster(peers: int, *, leader: bool = True) -> dict[str, Any]:
    """Qdrant's `GET /cluster` answer for a cluster of `peers` nodes."""
    ids = [str(1000 + i) for i in range(peers)]
    return {
        "result": {
            "status": "enabled",
            "peer_id": int(ids[0]) if ids else 0,
            "peers": {
                i: {"uri": f"http://qdrant-{n}.qdrant-headless:6335/"} for n, i in enumerate(ids)
            },
            "raft_info": {"term": 1, "commit": 4, "leader": int(ids[0]) if leader else None},
        },
        "status": "ok",
        "time": 1e-5,
    }


def job(*conditions: tuple[str, str]) -> dict[str, Any]:
    """A Job object with these (type, status) conditions."""
    return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}


class Answers:
    """Returns its answers in turn (an exception is raised); records the sleeps between."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.sleeps: list[float] = []

    def __call__(self, *args: Any) -> Any:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_peers_count_only_once_the_cluster_has_a_leader() -> None:
    assert wait_for.cluster_peers(cluster(3)) == 3
    assert wait_for.cluster_peers(cluster(3, leader=False)) == 0
    assert wait_for.cluster_peers({"result": {"status": "disabled"}}) == 1
    assert wait_for.cluster_peers({}) == 0


def test_the_ingest_waits_until_every_node_has_joined(capsys: pytest.CaptureFixture[str]) -> None:
    answers = Answers(
        ConnectionRefusedError("connection refused"),
        cluster(1),
        cluster(2, leader=False),
        cluster(2),
        cluster(3),
    )
    assert wait_for.wait_for_peers(answers, 3, sleep=answers.sleep, clock=lambda: 0.0) == 3
    assert answers.calls == 5 and answers.sleeps == [wait_for.POLL_SECONDS] * 4
    err = capsys.readouterr().err
    assert "0 of 3 peers (ConnectionRefusedError: connection refused)" in err
    assert "3 of 3 peers: ready" in err


def test_job_states_come_from_their_final_conditions() -> None:
    assert wait_for.job_state({}) == "running"
    assert wait_for.job_state(job(("SuccessCriteriaMet", "True"))) == "running"
    assert wait_for.job_state(job(("Complete", "False"))) == "running"
    assert wait_for.job_state(job(("SuccessCriteriaMet", "True"), ("Complete", "True"))) == (
        "complete"
    )
    assert wait_for.job_state(job(("FailureTarget", "True"), ("Failed", "True"))) == "failed"


class FakeJobs:
    def __init__(self, states: Answers, resume_failures: int = 0) -> None:
        self.states = states
        self.resumed: list[str] = []
        self.resume_failures = resume_failures

    def get(self, name: str) -> dict[str, Any]:
        assert name == "soundalike-ingest"
        return self.states()  # type: ignore[no-any-return]

    def resume(self, name: str) -> None:
        if self.resume_failures:
            self.resume_failures -= 1
            raise TimeoutError("the API server is busy")
        self.resumed.append(name)


def test_the_rebuild_is_resumed_once_the_ingest_completes() -> None:
    states = Answers(job(), OSError("API server restarting"), job(), job(("Complete", "True")))
    jobs = FakeJobs(states, resume_failures=1)
    code = wait_for.resume_after(
        jobs, "soundalike-ingest", "soundalike-neighbours", sleep=states.sleep, clock=lambda: 0.0
    )
    assert code == 0 and jobs.resumed == ["soundalike-neighbours"]
    assert states.calls == 4


def test_a_failed_ingest_leaves_the_rebuild_suspended(capsys: pytest.CaptureFixture[str]) -> None:
    states = Answers(job(), job(("Failed", "True")))
    jobs = FakeJobs(states)
    code = wait_for.resume_after(
        jobs, "soundalike-ingest", "soundalike-neighbours", sleep=states.sleep, clock=lambda: 0.0
    )
    assert code == 1 and jobs.resumed == []
    assert "soundalike-neighbours stays suspended" in capsys.readouterr().err


Handler = Callable[[BaseHTTPRequestHandler, bytes], tuple[int, Any]]


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]], dict[str, Handler]]]:
    """A local HTTP server: routes (METHOD path -> handler) to fill, requests it saw."""
    routes: dict[str, Handler] = {}
    seen: list[dict[str, Any]] = []

    class Handle(BaseHTTPRequestHandler):
        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            route = routes.get(f"{self.command} {self.path}")
            status, document = route(self, body) if route else (404, {"message": "not found"})
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handle)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen, routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_qdrant_is_asked_with_its_api_key(
    server: tuple[str, list[dict[str, Any]], dict[str, Handler]],
) -> None:
    url, seen, routes = server
    routes["GET /cluster"] = lambda handler, body: (
        (200, cluster(3)) if handler.headers.get("api-key") == "k" * 20 else (401, {})
    )
    assert wait_for.cluster_peers(wait_for.qdrant_cluster_reader(url, "k" * 20)()) == 3
    with pytest.raises(OSError):  # a refusal is waited out like a node that is not up
        wait_for.qdrant_cluster_reader(url, "wrong key")()
    assert [s["path"] for s in seen] == ["/cluster", "/cluster"]


def test_jobs_are_read_and_resumed_through_the_kubernetes_api(
    server: tuple[str, list[dict[str, Any]], dict[str, Handler]],
) -> None:
    url, seen, routes = server
    path = "/apis/batch/v1/namespaces/soundalike/jobs"
    routes[f"GET {path}/soundalike-ingest"] = lambda handler, body: (
        200,
        job(("Complete", "True")),
    )
    routes[f"PATCH {path}/soundalike-neighbours"] = lambda handler, body: (200, {"kind": "Job"})
    tokens = iter(["first-token", "renewed-token", "third-token"])
    jobs = wait_for.KubernetesJobs(url, lambda: next(tokens), "soundalike", None)

    assert wait_for.job_state(jobs.get("soundalike-ingest")) == "complete"
    jobs.resume("soundalike-neighbours")
    get, patch = seen
    assert get["headers"]["Authorization"] == "Bearer first-token"
    assert patch["headers"]["Authorization"] == "Bearer renewed-token"  # read per request
    assert patch["headers"]["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch["body"]) == {"spec": {"suspend": False}}

    with pytest.raises(OSError):  # a Job the account may not read: retried, not crashed on
        jobs.get("something-else")


def test_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wait_for.main([]) == 2
    assert wait_for.main(["resume-after", "only-one-job"]) == 2
    monkeypatch.delenv("SOUNDALIKE_QDRANT_URL", raising=False)
    monkeypatch.setenv("QDRANT_PEERS", "3")
    assert wait_for.main(["qdrant-peers"]) == 2
    monkeypatch.setenv("SOUNDALIKE_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("QDRANT_PEERS", "three")
    assert wait_for.main(["qdrant-peers"]) == 2
