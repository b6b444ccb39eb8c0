from django.contrib import admin

from .models import Doc, Entry, Reader, Tag

site = admin.AdminSite(name="docfields_admin")
site.register([Doc, Entry, Reader, Tag])
