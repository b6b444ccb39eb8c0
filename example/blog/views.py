from django.db.models import Count
from django.http import HttpResponse
from django.utils.html import escape

from .models import Entry


def index(request):
    entries = Entry.objects.select_related("blog").annotate(n_authors=Count("authors"))[:20]
    items = "".join(
        "<li><b>%s</b> in %s, %s (%d authors)</li>"
        % (escape(e.headline), escape(e.blog.name), e.pub_date.date(), e.n_authors) for e in entries)
    return HttpResponse("<h1>Publishing on djongo</h1><p><a href='/admin/'>admin</a></p><ul>%s</ul>" % items)
