from avatars import views
from django.urls import include, path

urlpatterns = [
    path("", views.index, name="index"),
    path("avatars/<int:pk>/delete/", views.delete, name="delete"),
    path("", include("storages_mogile.urls")),
]
