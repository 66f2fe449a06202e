from django.contrib import admin

from .models import BaseModel, Dataset, Job, JobAttempt, WorkerHeartbeat


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "rows", "format", "size_bytes", "created_at")
    exclude = ("preview",)
    raw_id_fields = ("blob",)


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "revision", "team")


class JobAttemptInline(admin.TabularInline):
    model = JobAttempt
    extra = 0
    can_delete = False
    readonly_fields = (
        "number",
        "worker",
        "resumed_from_step",
        "micro_batch_size",
        "started_at",
        "ended_at",
        "outcome",
        "message",
    )


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "team",
        "method",
        "status",
        "priority",
        "attempt",
        "failures",
        "checkpoint_step",
        "created_at",
    )
    list_filter = ("status", "method", "priority")
    raw_id_fields = ("dataset", "eval_dataset", "base_model", "start_from", "checkpoint")
    inlines = [JobAttemptInline]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "running_job", "seen_at", "started_at", "stopped")
    raw_id_fields = ("running_job",)
