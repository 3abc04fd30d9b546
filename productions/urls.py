"""URLs of the workspace's Deploy tab (`project_id` converter from `projects.urls`)."""

from django.urls import path

from productions import views

P = "projects/<project_id:project_id>/deploy/"

urlpatterns = [
    path(P, views.deploy_page, name="production-page"),
    path(f"{P}run", views.deploy, name="production-deploy"),
    path(f"{P}stop", views.stop, name="production-stop"),
    path(f"{P}releases/<str:release_id>/activate", views.activate, name="production-activate"),
    path(f"{P}domains/add", views.attach_domain, name="production-attach-domain"),
    path(f"{P}domains/remove", views.detach_domain, name="production-detach-domain"),
]
