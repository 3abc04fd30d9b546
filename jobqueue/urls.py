from django.urls import path

from jobqueue import views

app_name = "queue"

urlpatterns = [
    path("", views.monitor, name="monitor"),
    path("pause", views.pause, name="pause"),
    path("resume", views.resume, name="resume"),
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel", views.cancel, name="cancel"),
    path("jobs/<int:job_id>/retry", views.retry, name="retry"),
    path("jobs/<int:job_id>/run-now", views.run_now, name="run_now"),
    path("jobs/<int:job_id>/force-cancel", views.force_cancel, name="force_cancel"),
]
