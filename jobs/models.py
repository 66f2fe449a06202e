"""The jobs app's tables. One module, over 400 lines: Django's convention for an app's models, and these refer to
one another (a job to its dataset, blobs, artifacts, sweep)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Blob(models.Model):
    """Bytes stored in the database in chunks, so a worker on any host needs only the database (or, with key set,
    in the object store that every host reaches too)."""

    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField(default=0)
    # False until every chunk is written: a half-written blob is never served.
    complete = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # The object's key in the S3-compatible store (BLOB_STORE=s3); empty: the bytes are this row's chunks.
    key = models.CharField(max_length=300, blank=True, default="")


class BlobChunk(models.Model):
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="chunks")
    index = models.IntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blob", "index"], name="unique_blob_chunk")]


class Dataset(models.Model):
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="datasets")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=10)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    rows = models.IntegerField()
    columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)
    # Per-column empty-value counts and, when columns were named at upload, label counts; while or after a check
    # on a worker, the columns asked for ("asked") and, for an invalid file, its errors.
    stats = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class State(models.TextChoices):
        READY = "ready"
        CHECKING = "checking"  # a large upload's rows being checked by the maintenance worker
        INVALID = "invalid"  # the check found errors: stats["errors"] says which; it cannot be trained

    state = models.CharField(max_length=20, choices=State.choices, default=State.READY)
    progress = models.FloatField(null=True, blank=True)  # share of the file checked so far, while CHECKING
    state_at = models.DateTimeField(null=True, blank=True)  # the check's last sign of life

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return self.name


class BaseModel(models.Model):
    """A base model a job can start from. team=None: offered to every team."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, null=True, blank=True)
    name = models.CharField(max_length=200)
    # peftcore.models.resolve_model reference: "bundled/...", "local:<path under MODEL_ROOT>" or a hub id.
    source = models.CharField(max_length=300)
    revision = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=300, blank=True)
    # Per method at its defaults: {"trainable", "total", "share"} or {"refused": reason}. Counted by a worker
    # on the meta device (the web process never imports torch); empty until then.
    profile = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class State(models.TextChoices):
        READY = "ready"
        PREPARING = "preparing"  # a bundled model being converted once by the maintenance worker
        FAILED = "failed"

    state = models.CharField(max_length=20, choices=State.choices, default=State.READY)
    state_detail = models.CharField(max_length=2000, blank=True)  # why it failed, for the model list

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["source", "revision", "team"], name="unique_model_source")]

    def __str__(self):
        return self.name


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    class ErrorKind(models.TextChoices):
        BAD_DATA = "bad_data"
        BAD_PARAMS = "bad_params"
        OUT_OF_MEMORY = "out_of_memory"
        MODEL_LOAD = "model_load"
        CANCELLED = "cancelled"
        TIMEOUT = "timeout"
        LOST = "lost"
        INTERNAL = "internal"

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    name = models.CharField(max_length=200, blank=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    eval_dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="jobs")
    task = models.CharField(max_length=40, default="text-classification")
    method = models.CharField(max_length=40)
    method_params = models.JSONField(default=dict)
    params = models.JSONField(default=dict)
    # Why each setting the user left empty got its value ("params.epochs" -> reason; peftcore.defaults), as
    # chosen when the job was created; training adds what only the data can tell (the report has them all).
    choices = models.JSONField(default=dict, blank=True)
    # What the two columns hold depends on the task (peftcore.tasks.COLUMN_ROLES): text and label, prompt and
    # response (paths such as instances[0].output allowed), input and target. Blank for SFT on a messages column.
    text_column = models.CharField(max_length=200, blank=True)
    label_column = models.CharField(max_length=200, blank=True)
    # SFT only: an extra input appended to the prompt, a chat messages column, the prompt template ("" = auto).
    input_column = models.CharField(max_length=200, blank=True)
    messages_column = models.CharField(max_length=200, blank=True)
    template = models.CharField(max_length=20, blank=True)
    # Train on from a finished job's adapter: "continue" trains it further, "stack" keeps it frozen below a new one.
    start_from = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    start_mode = models.CharField(max_length=10, blank=True, choices=[("continue", "continue"), ("stack", "stack")])
    # A combination job (issue 21) trains nothing: finished jobs' adapters combined with weights, then evaluated
    # beside each parent. {"parents": [job ids], "weights": [...], "combination": "sum", "density": null}.
    combine = models.JSONField(null=True, blank=True)
    # One adapter per value of this column (issue 21, PEFT-U; peftcore/groups.py), each optionally starting from
    # a shared adapter trained on all rows first; with Poly or multitask prompt tuning, one adapter with a task per
    # value (peftcore/task_routing.py). Blank: one adapter for all rows.
    group_column = models.CharField(max_length=200, blank=True)
    group_shared = models.BooleanField(default=False)
    # Set at creation when the group column names each row's task in one adapter (Poly, multitask prompt tuning);
    # a group run made before this existed trained one adapter per group, whatever its method.
    task_per_group = models.BooleanField(default=False)
    # The sweep this job is one point of (issue 21); null for a job submitted on its own.
    sweep = models.ForeignKey("Sweep", on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")

    class Priority(models.IntegerChoices):
        LOW = -1
        NORMAL = 0
        HIGH = 1

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Within a team: higher first. Across teams fair share decides (selectors.queued_in_order).
    priority = models.IntegerField(choices=Priority.choices, default=Priority.NORMAL)
    # attempt fences writes: the runner only writes while the row still carries its own attempt.
    attempt = models.IntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Attempts that ended without a verdict (worker lost, training process crashed); capped by JOB_MAX_FAILURES
    # so a poison job ends FAILED instead of looping. Preemption and out-of-memory retries do not count.
    failures = models.IntegerField(default=0)
    # The studio's own latest checkpoint (peftcore.checkpoints: safetensors + JSON, never a pickle).
    checkpoint = models.ForeignKey(Blob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    checkpoint_step = models.IntegerField(default=0)
    # Set after an out-of-memory retry: rows per forward pass (gradient accumulation keeps the batch size).
    micro_batch_size = models.IntegerField(null=True, blank=True)
    # Seconds of training this run may use (None: JOB_TIME_LIMIT_SECONDS); run_seconds counts them across
    # attempts and starts again when a user resumes the job.
    time_limit_seconds = models.IntegerField(null=True, blank=True)
    run_seconds = models.FloatField(default=0)
    device = models.CharField(max_length=10, blank=True)  # "cuda" or "cpu": what run_seconds were spent on
    # The latest thing the runtime did on its own that a user should know (a resume, an out-of-memory retry).
    notice = models.CharField(max_length=500, blank=True)
    # When the broker was last told about this job; the reaper publishes long-queued jobs again.
    enqueued_at = models.DateTimeField(default=timezone.now)

    progress_step = models.IntegerField(default=0)
    progress_total = models.IntegerField(default=0)
    # Seconds left as the training child estimated them at heartbeat_at (steady-state step and evaluation times).
    eta_seconds = models.FloatField(null=True, blank=True)
    # What the running attempt is doing, in words ("loading the model", "evaluating epoch 2 of 5"), from the child.
    phase = models.CharField(max_length=200, blank=True)
    last_loss = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error_kind = models.CharField(max_length=20, choices=ErrorKind.choices, blank=True)
    error_message = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the owner's email and the team's webhooks were written for the job's final status (jobs.notifications);
    # null on a job not yet final or not yet noticed. A resume clears it so the next ending notifies again.
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            models.Index(fields=["team", "-id"], name="job_team_newest"),  # the job list's keyset pages
            # The notification sweep's scan: only jobs not yet notified (a few), whatever the history.
            models.Index(fields=["status"], condition=models.Q(notified_at__isnull=True), name="job_unnotified"),
            # The queue in each team's order (jobs/queue_order.py): a claim reads each team's first few rows.
            models.Index(
                fields=["team", "-priority", "created_at", "id"],
                condition=models.Q(status="queued", cancel_requested=False),
                name="job_queue_order",
            ),
        ]

    def __str__(self):
        return self.name or f"job {self.pk}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def label_names(self) -> dict[str, str]:
        """The names the team gave its dataset's labels ("1" -> "positive"), for reports and the playground."""
        stats = self.dataset.stats or {}
        return stats.get("label_names") or {} if stats.get("label_column") == self.label_column else {}


class JobAttempt(models.Model):
    """One claim of a job by a worker: where it ran, what it resumed from and how it ended."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        PREEMPTED = "preempted"  # its worker shut down; checkpointed and queued again
        CRASHED = "crashed"
        OUT_OF_MEMORY = "out_of_memory"
        TIMEOUT = "timeout"
        LOST = "lost"  # its lease ran out (worker killed, stopped or cut off)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.IntegerField()
    worker = models.CharField(max_length=200)
    resumed_from_step = models.IntegerField(default=0)
    micro_batch_size = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    message = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="unique_job_attempt")]


class MetricPoint(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metric_points")
    step = models.IntegerField()
    name = models.CharField(max_length=40)
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["job", "name", "step"])]


class Artifact(models.Model):
    class Kind(models.TextChoices):
        ADAPTER = "adapter"
        MERGED = "merged"  # base model + adapter folded into one safetensors model (jobs/merged_exports.py)
        LOG = "log"  # every attempt's story and output, as text (jobs/services/job_logs.py)

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    filename = models.CharField(max_length=255)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "kind"], name="unique_job_artifact")]


class MergedExport(models.Model):
    """A request to fold a job's adapter into its base model; the worker stores the result as the job's MERGED
    artifact."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="merged_export")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    message = models.CharField(max_length=2000, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)


class EvalReport(models.Model):
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="report")
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)


class WorkerHeartbeat(models.Model):
    """Written by each Celery worker every WORKER_HEARTBEAT_SECONDS (jobs.workers): host, queues, accelerators
    and memory in `info`, the job it runs. A row not seen for a few periods is a worker that is gone."""

    hostname = models.CharField(max_length=200, unique=True)  # the Celery node name, e.g. training@gpu-1
    running_job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    info = models.JSONField(default=dict)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField()
    stopped = models.BooleanField(default=False)


class WorkerResult(models.Model):
    """A question the web process asks a worker (it has no torch): the worker fills `result`; `requested_at`
    lets jobs.services ask again when a message was lost."""

    result = models.JSONField(null=True, blank=True)
    requested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class TrainableCount(WorkerResult):
    """A method's trainable-parameter count on a base model for one set of method parameters, counted by the
    maintenance worker on the meta device (the web process has no torch). result is {trainable, total, share,
    head}, or {"refused": why}; null until counted."""

    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=40)
    params_key = models.CharField(max_length=64)  # sha256 of the canonical JSON of params
    params = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["base_model", "method", "params_key"], name="unique_trainable_count")
        ]


class TokenStats(WorkerResult):
    """Token lengths of one dataset column under one base model's tokenizer, counted by the maintenance worker
    (the web process loads no tokenizer). result is {"histogram": {length: rows}} or {"error": why}; null until
    counted. A histogram, not a summary, so any max length can be judged without counting again."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    base_model = models.ForeignKey(BaseModel, on_delete=models.CASCADE, related_name="+")
    # A column name, or for SFT "sft:" + a hash of `options` (the job's columns and template): then result also
    # holds prompt lengths and the rows that cannot be read (peftcore.token_lengths.sft_lengths).
    column = models.CharField(max_length=200)
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "base_model", "column"], name="unique_token_stats")]


class PlaygroundRun(WorkerResult):
    """Texts a user tries on a finished job's adapter; a worker fills result with
    {"predictions": [{label, probabilities}]} or {"error": why}. Null until then."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="playground_runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    texts = models.JSONField()
    # generation only: {temperature, top_p, max_new_tokens, compare_base[, compare_job, compare_name]} (compare_job:
    # another job whose adapter writes beside this one); empty: greedy, 64 tokens, adapter only
    options = models.JSONField(default=dict, blank=True)
    # what the worker has written so far, while it writes:
    # {"generations": [...][, "base_generations": [...]][, "compare_generations": [...]]}
    partial = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def streaming(self) -> list[tuple[str, str, str | None, str | None]]:
        """(text, the adapter's answer so far, the base model's so far or None, the compared adapter's so far or
        None) while the worker writes."""
        partial = self.partial or {}
        answers = partial.get("generations") or [""] * len(self.texts)
        base = partial.get("base_generations") or [None] * len(self.texts)
        compared = partial.get("compare_generations") or [None] * len(self.texts)
        return list(zip(self.texts, answers, base, compared))

    @property
    def pairs(self) -> list[tuple[str, dict]]:
        """(text, answer) for each text once the worker ran: a classifier's {label, probabilities}, or a
        generation (SFT, seq2seq) adapter's {generation}."""
        result = self.result or {}
        return list(zip(self.texts, result.get("generations") or result.get("predictions") or []))


class Sweep(models.Model):
    """Several jobs on one dataset submitted as one (issue 21): methods and/or a grid over one or two settings,
    or a random sample of that grid. Each job is an ordinary job (queued fairly, counted in quotas); the sweep
    only groups them. `base`: the settings every job shares; `axes`: {"methods": [...], "r": [...], ...}."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="sweeps")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    name = models.CharField(max_length=200)
    base_job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    axes = models.JSONField(default=dict)
    budget = models.IntegerField(null=True, blank=True)  # random search: how many of the grid's points
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.name


class JobPreset(models.Model):
    """A team's saved job settings: the job form's query (data, model, method, columns and the settings a user
    typed), opened as a new job's form."""

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="job_presets")
    name = models.CharField(max_length=100)
    query = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_preset_name")]


class Webhook(models.Model):
    """A team's URL that gets a signed POST when one of its jobs ends (jobs.notifications)."""

    EVENTS = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)

    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    # The HMAC key, kept in clear because signing needs it; shown to the admin once, at creation.
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list)  # a subset of EVENTS
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One event for one webhook: written with the job's notification, posted (and retried) by the sweep."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # gave up after WEBHOOK_MAX_ATTEMPTS

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    event = models.CharField(max_length=20)
    payload = models.JSONField()
    attempts = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # When the sweep may post it next; pushed ahead while a sweep holds it, so a dead sweep's claim runs out.
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due"),
            models.Index(fields=["webhook", "-created_at"]),
        ]


class StorageSweep(models.Model):
    """One run of the storage sweep (jobs.services.storage_sweep): what it reclaimed, for the dashboard."""

    ran_at = models.DateTimeField(auto_now_add=True)
    blobs = models.IntegerField(default=0)
    blob_bytes = models.BigIntegerField(default=0)
    files = models.IntegerField(default=0)
    file_bytes = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-ran_at"]
