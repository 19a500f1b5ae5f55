"""The 2008 site's model, without the storage subclasses: one factory call per field."""

from django.db import models

from storages_mogile import mogile_storage


class Avatar(models.Model):
    name = models.CharField(max_length=100)
    # MogileFS class "avatar" keeps 2 copies on the dev cluster, "thumb" 1.
    image = models.ImageField(
        storage=mogile_storage(klass="avatar"),
        upload_to="avatars",
        width_field="width",
        height_field="height",
    )
    width = models.PositiveIntegerField(null=True)
    height = models.PositiveIntegerField(null=True)
    thumb = models.ImageField(storage=mogile_storage(klass="thumb"), upload_to="thumbs")
    uploaded = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-uploaded"]

    def __str__(self) -> str:
        return self.name
