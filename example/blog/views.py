from django.db.models import Count
from django.http import HttpResponse
from django.utils.html import escape

from djongo.models import TextScore

from .models import Entry

SEARCH_FORM = ("<form method='get' action='/' role='search'><input type='search' name='q' value='%s' "
               "placeholder='Search entries' aria-label='Search entries'> <button type='submit'>Search</button></form>")


def index(request):
    """The latest entries; with ?q=, the entries the search finds through
    the entries' text index (MongoDB's $text: words, "phrases", -not),
    best match first."""
    q = request.GET.get("q", "").strip()
    if q:
        entries = (Entry.objects.filter(headline__search=q).select_related("blog")
                   .annotate(score=TextScore()).order_by("-score", "headline")[:20])
        items = "".join("<li class='hit'><b>%s</b> in %s (score %.2f)</li>"
                        % (escape(e.headline), escape(e.blog.name), e.score) for e in entries)
        heading = "<h2>%d found for &ldquo;%s&rdquo;</h2>" % (len(entries), escape(q))
    else:
        entries = Entry.objects.select_related("blog").annotate(n_authors=Count("authors"))[:20]
        items = "".join(
            "<li><b>%s</b> in %s, %s (%d authors)</li>"
            % (escape(e.headline), escape(e.blog.name), e.pub_date.date(), e.n_authors) for e in entries)
        heading = ""
    return HttpResponse("<h1>Publishing on djongo</h1><p><a href='/admin/'>admin</a></p>%s%s<ul>%s</ul>"
                        % (SEARCH_FORM % escape(q), heading, items))
