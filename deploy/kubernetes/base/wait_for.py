"""The waits of soundalike's Kubernetes deployment, run by the soundalike image's Python
(standard library only; mounted from the ConfigMap soundalike-scripts):

  python wait_for.py qdrant-peers
      Until the Qdrant cluster at SOUNDALIKE_QDRANT_URL (key: SOUNDALIKE_QDRANT_API_KEY) has
      QDRANT_PEERS peers and a leader. The ingest pods' init container: the first ingest creates
      the collections, whose shard copies go only to the nodes that have joined by then.
  python wait_for.py resume-after JOB SUSPENDED_JOB
      Until the Job JOB of this pod's namespace completes, then resumes SUSPENDED_JOB (exit 0);
      exit 1 when JOB fails. The trigger of the neighbour-list rebuild.

Both poll every POLL_SECONDS, ride out errors (a Qdrant node or the API server restarting)
and say what they wait for every REPORT_SECONDS.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TypeVar

POLL_SECONDS = 5.0
REPORT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 10.0
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

JobState = Literal["running", "complete", "failed"]
T = TypeVar("T")
# What the polls survive: connection refused or reset, timeouts, HTTP errors, unreadable JSON.
TRANSIENT = (OSError, ValueError)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cluster_peers(document: dict[str, Any]) -> int:
    """Peers of Qdrant's `GET /cluster` answer that have agreed on a leader (0 before that);
    a node not in distributed mode counts as one."""
    result = document.get("result") or {}
    if result.get("status") == "disabled":
        return 1
    if (result.get("raft_info") or {}).get("leader") is None:
        return 0
    return len(result.get("peers") or {})


def job_state(job: dict[str, Any]) -> JobState:
    """A Job object's outcome from its final conditions (Complete, Failed)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "complete"
        if condition.get("type") == "Failed":
            return "failed"
    return "running"


def poll_until(
    read: Callable[[], T],
    unreadable: T,
    done: Callable[[T], bool],
    waiting: Callable[[T], str],
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> T:
    """Reads every POLL_SECONDS until `done(value)` and returns that value; a read that fails
    (TRANSIENT) counts as `unreadable`; says `waiting(value)`, with the last error, every
    REPORT_SECONDS."""
    last_report = -REPORT_SECONDS
    while True:
        try:
            value, problem = read(), ""
        except TRANSIENT as error:
            value, problem = unreadable, f" ({type(error).__name__}: {error})"
        if done(value):
            return value
        if clock() - last_report >= REPORT_SECONDS:
            say(waiting(value) + problem)
            last_report = clock()
        sleep(POLL_SECONDS)


def wait_for_peers(
    read_cluster: Callable[[], dict[str, Any]],
    wanted: int,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Polls until the cluster has `wanted` peers; returns how many it has."""
    peers = poll_until(
        lambda: cluster_peers(read_cluster()),
        0,
        lambda count: count >= wanted,
        lambda count: f"waiting for Qdrant: {count} of {wanted} peers",
        sleep=sleep,
        clock=clock,
    )
    say(f"Qdrant has {peers} of {wanted} peers: ready")
    return peers


class Jobs(Protocol):
    def get(self, name: str) -> dict[str, Any]: ...

    def resume(self, name: str) -> None: ...


def resume_after(
    jobs: Jobs,
    job: str,
    suspended: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Polls `job` until it completes, then resumes `suspended` (0); 1 when `job` failed."""
    state = poll_until(
        lambda: job_state(jobs.get(job)),
        "running",
        lambda outcome: outcome != "running",
        lambda _: f"waiting for the Job {job} to complete",
        sleep=sleep,
        clock=clock,
    )
    if state == "failed":
        say(
            f"the Job {job} failed: {suspended} stays suspended. Rerun the failed shards "
            f"(docs/kubernetes.md, 'Rerun an ingest'), then this Job."
        )
        return 1
    while True:
        try:
            jobs.resume(suspended)
            break
        except TRANSIENT as error:
            say(f"could not resume {suspended} yet ({type(error).__name__}: {error})")
            sleep(POLL_SECONDS)
    say(f"the Job {job} completed: resumed {suspended}")
    return 0


def read_json(request: urllib.request.Request, context: ssl.SSLContext | None = None) -> Any:
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS, context=context) as r:
        return json.loads(r.read())


def qdrant_cluster_reader(url: str, api_key: str | None) -> Callable[[], dict[str, Any]]:
    """Reads `GET {url}/cluster`, with Qdrant's `api-key` header when there is a key."""
    headers = {"api-key": api_key} if api_key else {}

    def read() -> dict[str, Any]:
        document = read_json(urllib.request.Request(f"{url.rstrip('/')}/cluster", headers=headers))
        if not isinstance(document, dict):
            raise ValueError("GET /cluster did not answer a JSON object")
        return document

    return read


class KubernetesJobs:
    """The Jobs of one namespace through the Kubernetes API, with a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        namespace: str,
        context: ssl.SSLContext | None,
    ) -> None:
        """`token`: read before each request (the kubelet renews a pod's token file)."""
        self._jobs_url = f"{base_url.rstrip('/')}/apis/batch/v1/namespaces/{namespace}/jobs"
        self._token = token
        self._context = context

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}

    @classmethod
    def in_cluster(cls) -> KubernetesJobs:
        """The pod's own API server, service account token and namespace."""
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"

        def token() -> str:
            with open(f"{SERVICE_ACCOUNT}/token", encoding="utf-8") as file:
                return file.read().strip()

        with open(f"{SERVICE_ACCOUNT}/namespace", encoding="utf-8") as file:
            namespace = file.read().strip()
        context = ssl.create_default_context(cafile=f"{SERVICE_ACCOUNT}/ca.crt")
        return cls(f"https://{host}:{port}", token, namespace, context)

    def get(self, name: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self._jobs_url}/{name}", headers=self._headers())
        document = read_json(request, self._context)
        if not isinstance(document, dict):
            raise ValueError(f"GET job {name} did not answer a JSON object")
        return document

    def resume(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self._jobs_url}/{name}",
            data=json.dumps({"spec": {"suspend": False}}).encode(),
            headers={**self._headers(), "Content-Type": "application/merge-patch+json"},
            method="PATCH",
        )
        read_json(request, self._context)


USAGE = "usage: wait_for.py qdrant-peers | resume-after JOB SUSPENDED_JOB"


def main(argv: Sequence[str]) -> int:
    if list(argv[:1]) == ["qdrant-peers"] and len(argv) == 1:
        try:
            url = os.environ["SOUNDALIKE_QDRANT_URL"]
            wanted = int(os.environ["QDRANT_PEERS"])
        except (KeyError, ValueError) as error:
            say(f"qdrant-peers needs SOUNDALIKE_QDRANT_URL and QDRANT_PEERS (a number): {error}")
            return 2
        reader = qdrant_cluster_reader(url, os.environ.get("SOUNDALIKE_QDRANT_API_KEY"))
        wait_for_peers(reader, wanted)
        return 0
    if list(argv[:1]) == ["resume-after"] and len(argv) == 3:
        return resume_after(KubernetesJobs.in_cluster(), argv[1], argv[2])
    say(USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
