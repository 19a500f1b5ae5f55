from django.urls import include, path

from avatars import views

urlpatterns = [
    path("", views.index, name="index"),
    path("avatars/<int:pk>/delete/", views.delete, name="delete"),
    path("", include("storages_mogile.urls")),
]
