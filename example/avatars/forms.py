from django import forms


class AvatarForm(forms.Form):
    name = forms.CharField(max_length=100)
    image = forms.ImageField()
