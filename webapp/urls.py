from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from . import team_views, views
from .api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_new, name="job-new"),
    path("jobs/compare/", views.job_compare, name="job-compare"),
    path("jobs/new/count/", views.job_count, name="job-count"),
    path("jobs/new/tokens/", views.job_tokens, name="job-tokens"),
    path("jobs/<int:job_id>/", views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/status/", views.job_status, name="job-status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/resume/", views.job_resume, name="job-resume"),
    path("team/", team_views.dashboard, name="team-dashboard"),
    path("team/members/", team_views.member_add, name="team-member-add"),
    path("team/members/<int:membership_id>/", team_views.member_change, name="team-member-change"),
    path("team/quotas/", team_views.quotas, name="team-quotas"),
    path("jobs/<int:job_id>/adapter/", views.job_adapter, name="job-adapter"),
    path("jobs/<int:job_id>/playground/", views.job_playground, name="job-playground"),
    path("jobs/<int:job_id>/playground/<int:run_id>/", views.job_playground_run, name="job-playground-run"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
