"""Prometheus metrics, served at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

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

# Gauges of the database, computed when /metrics is read (`conjunction.gauges`). Every replica
# reports the same figures of the one database: aggregate them across replicas with max(), not
# sum().
QUEUED_JOBS = Gauge(
    "conjunction_jobs_queued", "Jobs waiting in the queue, by kind (due or not yet)", ["kind"]
)
OLDEST_QUEUED_SECONDS = Gauge(
    "conjunction_jobs_oldest_queued_seconds",
    "How long the longest-waiting due job has waited past its due time (0: none waits)",
)
DEAD_JOBS = Gauge(
    "conjunction_jobs_dead", "Jobs that failed for good, waiting for `jobs retry` or `jobs purge`"
)
PENDING_TRIGGERS = Gauge(
    "conjunction_triggers_pending",
    "Trigger events without a result yet: downstream pipelines starting or running",
)
DOWNSTREAM_SECONDS = Histogram(
    "conjunction_downstream_seconds",
    "How long downstream pipelines ran (a trigger's start to its result), by result; "
    "counted from the results recorded since this process first served /metrics",
    ["result"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200),
)
# What each forge's last answer said of its rate limit (GitHub: X-RateLimit-*, GitLab:
# RateLimit-*), by client: a GitHub installation's owner, "app" or "anonymous"; GitLab's bot.
RATE_LIMIT_REMAINING = Gauge(
    "conjunction_forge_rate_limit_remaining",
    "Requests left in the forge's current rate-limit window, as its last answer said",
    ["forge", "client"],
)
RATE_LIMIT = Gauge(
    "conjunction_forge_rate_limit",
    "Requests the forge allows in one rate-limit window, as its last answer said",
    ["forge", "client"],
)
