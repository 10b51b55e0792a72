"""The figures of one `ionctl loadtest -o json` run that the bench scripts compare.

`scripts/bench-ab` and `scripts/bench-janus` both import it, so that the headline figure,
the SFU's CPU per forwarded packet, has one definition: the SFU process's CPU seconds over
the window divided by the RTP packets its subscribers received. The load generator counts
those packets the same way whichever SFU it drives.
"""

import json
import math


def figures(path):
    """Reads one run's JSON. `us_per_pkt`, `cores` and `ms_per_viewer_s` are NaN when the
    run has no SFU CPU time or no packets received; the caller decides whether that is an
    error."""
    r = json.load(open(path))
    s, sfu = r["summary"], r["agent"]
    secs = r["window"]["seconds"]
    viewers = r["config"]["subscribers"] + r["config"]["publishers"] - 1
    rtp = sum(t["rtp_packets"] for t in r["tracks"])
    cpu = sfu["cpu_seconds"] or math.nan
    return {
        "us_per_pkt": cpu / rtp * 1e6 if rtp else math.nan,
        "cores": cpu / secs,
        "ms_per_viewer_s": cpu / secs / max(viewers, 1) * 1e3,
        "loss": s["loss"],
        "p50": s["latency_p50_ms"] or math.nan,
        "p99": s["latency_p99_ms"] or math.nan,
        "rss": (sfu["rss_bytes"] or 0) / 2**20,
        "pps": rtp / secs,
        "tracks": f'{s["tracks_received"]}/{s["tracks_expected"]}',
    }
