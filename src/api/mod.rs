//! `ionctl serve`: the placer over HTTP for web front ends. `POST /v1/place` takes and returns
//! JSON, `GET /v1/nodes` and `GET /v1/sessions` read the cluster, `GET /healthz` says whether
//! etcd answers, and `GET /metrics` exposes Prometheus text. Several replicas can serve one
//! etcd: every reservation goes through the same race-free commit.

mod answer;

pub use answer::PlaceAnswer;
