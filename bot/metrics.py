"""Prometheus metrics, served at /metrics."""

from prometheus_client import Counter, Histogram

DELIVERIES = Counter(
    "conjunction_webhook_deliveries_total",
    "Webhook deliveries received, by forge and outcome",
    ["forge", "outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "conjunction_webhook_answer_seconds", "Time to answer a webhook delivery", ["forge"]
)
INTAKE_BATCH = Histogram(
    "conjunction_intake_batch_deliveries",
    "Webhook deliveries stored in one transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
JOBS_ENQUEUED = Counter("conjunction_jobs_enqueued_total", "Jobs added to the queue", ["kind"])
JOBS_DONE = Counter("conjunction_jobs_done_total", "Jobs that ran to completion", ["kind"])
JOBS_FAILED = Counter(
    "conjunction_jobs_failed_total",
    "Job runs that failed; state is queued (will retry) or dead",
    ["kind", "state"],
)
JOB_SECONDS = Histogram("conjunction_job_seconds", "Time a job run took", ["kind"])
TRIGGERS = Counter(
    "conjunction_triggers_total", "Downstream trigger events, by outcome", ["outcome"]
)
RESULTS = Counter("conjunction_results_total", "Downstream results received", ["result"])
