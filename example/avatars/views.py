"""Upload an avatar, list them with their thumbnails, delete one."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.files.base import ContentFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from PIL import Image

from avatars.forms import AvatarForm
from avatars.models import Avatar

THUMB_SIZE = (64, 64)


def make_thumbnail(upload) -> ContentFile:
    """A PNG thumbnail of an uploaded image."""
    upload.seek(0)
    with Image.open(upload) as image:
        image.thumbnail(THUMB_SIZE)
        buffer = io.BytesIO()
        image.convert("RGBA").save(buffer, "PNG")
    return ContentFile(buffer.getvalue())


def index(request: HttpRequest) -> HttpResponse:
    form = AvatarForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["image"]
        avatar = Avatar(name=form.cleaned_data["name"])
        avatar.image.save(upload.name, upload, save=False)
        # the thumbnail is a PNG whatever was uploaded: its name keeps one extension
        avatar.thumb.save(f"{Path(upload.name).stem}.png", make_thumbnail(upload), save=False)
        avatar.save()
        return redirect("index")
    return render(request, "avatars/index.html", {"form": form, "avatars": Avatar.objects.all()})


@require_POST
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    avatar = get_object_or_404(Avatar, pk=pk)
    avatar.image.delete(save=False)
    avatar.thumb.delete(save=False)
    avatar.delete()
    return redirect("index")
