from django.contrib import admin

from .models import Author, Blog, Entry, Tag


@admin.register(Blog)
class BlogAdmin(admin.ModelAdmin):
    list_display = ["name", "tagline"]
    search_fields = ["name"]


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "city"]
    search_fields = ["name", "email"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = ["headline", "blog", "pub_date", "rating", "address"]
    # address__city and contributors__role: values inside the documents
    list_filter = ["blog", "tags", "pub_date", "address__city", "contributors__role"]
    # address__city and contributors__name reach into the documents
    search_fields = ["headline", "body_text", "address__city", "contributors__name", "contributors__role"]
    date_hierarchy = "pub_date"
    filter_horizontal = ["authors", "tags"]
