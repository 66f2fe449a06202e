from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from . import (
    account_views,
    export_views,
    invitation_views,
    job_defaults_views,
    job_list_views,
    login_views,
    model_views,
    team_views,
    views,
    webhook_views,
)
from .api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", login_views.LoginView.as_view(), name="login"),
    path("password-reset/", login_views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", login_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("jobs/", job_list_views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/compare/", views.job_compare, name="job-compare"),
    path("jobs/new/count/", views.job_count, name="job-count"),
    path("jobs/new/tokens/", views.job_tokens, name="job-tokens"),
    path("jobs/new/defaults/", job_defaults_views.job_defaults, name="job-defaults"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/status/", views.job_status, name="job-status"),
    path("jobs/<int:job_id>/chart/", views.job_chart, name="job-chart"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job-resume"),
    path("team/", team_views.dashboard, name="team-dashboard"),
    path("team/members/", team_views.member_add, name="team-member-add"),
    path("team/members/<int:membership_id>/", team_views.member_change, name="team-member-change"),
    path("team/quotas/", team_views.quotas, name="team-quotas"),
    path("team/webhooks/", webhook_views.webhook_add, name="team-webhook-add"),
    path("team/webhooks/<int:webhook_id>/delete/", webhook_views.webhook_delete, name="team-webhook-delete"),
    path("team/models/", model_views.model_add, name="team-model-add"),
    path("team/models/<int:model_id>/remove/", model_views.model_remove, name="team-model-remove"),
    path("team/switch/", account_views.team_switch, name="team-switch"),
    path("team/delete/", team_views.delete, name="team-delete"),
    path("team/invitations/", invitation_views.invitation_create, name="team-invitation-create"),
    path(
        "team/invitations/<int:invitation_id>/revoke/",
        invitation_views.invitation_revoke,
        name="team-invitation-revoke",
    ),
    path("invite/<str:token>/", invitation_views.invitation_accept, name="invitation-accept"),
    path("account/tokens/", account_views.tokens, name="account-tokens"),
    path("account/tokens/<int:token_id>/revoke/", account_views.token_revoke, name="account-token-revoke"),
    path("jobs/<int:job_id>/adapter/", views.job_adapter, name="job-adapter"),
    path("jobs/<int:job_id>/merged/", export_views.job_merged, name="job-merged"),
    path("jobs/<int:job_id>/merged/download/", export_views.job_merged_download, name="job-merged-download"),
    path("jobs/<int:job_id>/playground/", views.job_playground, name="job-playground"),
    path("jobs/<int:job_id>/playground/<int:run_id>/", views.job_playground_run, name="job-playground-run"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]

# A request Django refuses before a view runs (more than one file in an upload, ...) is told why.
handler400 = "webapp.errors.bad_request"
