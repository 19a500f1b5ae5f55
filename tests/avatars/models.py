"""The seed's avatar model, with per-field MogileFS classes from the factory."""

from django.db import models

from storages_mogile import mogile_storage


class Avatar(models.Model):
    name = models.CharField(max_length=100)
    image = models.ImageField(storage=mogile_storage(klass="avatar"), upload_to="avatars")
    thumb = models.ImageField(storage=mogile_storage(klass="thumb"), upload_to="thumbs", blank=True)
