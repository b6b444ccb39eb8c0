"""manage.py seed: sample blogs, authors, tags and entries (idempotent), and
a superuser from DJANGO_SUPERUSER_USERNAME / _PASSWORD (default admin/admin)."""
import datetime
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from blog.models import Author, Blog, Entry, Tag


class Command(BaseCommand):
    help = "Creates the example site's sample data and superuser."

    @transaction.atomic
    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin")
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username, "admin@example.com",
                                          os.environ.get("DJANGO_SUPERUSER_PASSWORD", "admin"))
        if Blog.objects.exists():
            self.stdout.write("sample data already there")
            return
        beatles = Blog.objects.create(name="Beatles Blog", tagline="All the latest Beatles news.")
        cooking = Blog.objects.create(name="Cooking", tagline="Recipes and kitchens.")
        ann, bob, cy = (Author.objects.create(name=n, email=e, city=c) for n, e, c in [
            ("Ann", "ann@example.com", "Paris"), ("Bob", "bob@example.com", "London"), ("Cy", "", "Berlin")])
        tags = {n: Tag.objects.create(name=n) for n in ("music", "news", "food", "howto")}
        now = timezone.now()
        for i, (blog, headline, authors, tagnames, city, contributors) in enumerate([
            (beatles, "Lennon's lost demo found", [ann], ["music", "news"], "Liverpool",
             [{"name": "Ann", "role": "writer"}, {"name": "Dee", "role": "photos"}]),
            (beatles, "Abbey Road at 55", [ann, bob], ["music"], "London", [{"name": "Bob", "role": "writer"}]),
            (cooking, "Bread in five steps", [cy], ["food", "howto"], "Berlin", []),
            (cooking, "The perfect omelette", [bob, cy], ["food"], "Lyon",
             [{"name": "Cy", "role": "recipe"}, {"name": "Eve", "role": "photos", "email": "eve@example.com"}]),
        ]):
            e = Entry.objects.create(blog=blog, headline=headline, body_text="Lorem ipsum " * 20,
                                     pub_date=now - datetime.timedelta(days=10 * i), rating=5 - i,
                                     address={"city": city, "country": "UK" if blog is beatles else ""},
                                     contributors=contributors)
            e.authors.set(authors)
            e.tags.set([tags[t] for t in tagnames])
        self.stdout.write("created %d blogs, %d authors, %d tags, %d entries" % (
            Blog.objects.count(), Author.objects.count(), Tag.objects.count(), Entry.objects.count()))
