"""DateTimeField to the microsecond on djongo and on SQLite side by side
(features.supports_microsecond_precision; src/compile/exact_dt.c): the same
writes on both databases, then each queryset must give the same rows --
values read back, filters with every comparison, ordering, aggregates,
groups, F() + timedelta, F() - F(), Trunc/Extract/TruncTime, update(),
bulk_create with update_conflicts. The instants sit one microsecond apart
on both sides of a millisecond, so a millisecond-only store fails them.

Run in a process of its own (test_models.py); models: dtusapp/models.py."""
import datetime

import side_by_side

side_by_side.configure("dtusapp")

from django.db.models import Count, F, Max, Min, Q  # noqa: E402
from django.db.models.functions import Cast, Extract, Greatest, Least, Trunc, TruncTime  # noqa: E402
from django.db import models  # noqa: E402
from django.test import TestCase  # noqa: E402
from dtusapp.models import Event  # noqa: E402

DBS = side_by_side.DBS
UTC = datetime.timezone.utc
T = datetime.datetime(2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC)
US = datetime.timedelta(microseconds=1)
# name, at, until, length
DATA = [
    ("a", T, T + US, datetime.timedelta(microseconds=999)),
    ("b", T + US, T, datetime.timedelta(microseconds=-1)),
    ("c", T + 999 * US, T + 999 * US, datetime.timedelta(days=1, microseconds=1)),
    ("d", T + 1000 * US, None, None),
    ("e", T - US, T + 5 * US, datetime.timedelta(0)),
    ("f", None, T, datetime.timedelta(microseconds=1001)),
    ("g", datetime.datetime(1969, 12, 31, 23, 59, 58, 499999, tzinfo=UTC), T, US),
]

test_databases = side_by_side.databases_fixture()


class MicrosecondDatetimes(TestCase):
    databases = set(DBS)

    @classmethod
    def setUpTestData(cls):
        for db in DBS:
            Event.objects.using(db).bulk_create(
                [Event(name=n, at=a, until=u, length=ln) for n, a, u, ln in DATA])

    def same(self, query):
        """query(manager) on both databases: the same list, not empty."""
        got, want = list(query(Event.objects.using("default"))), list(query(Event.objects.using("lite")))
        self.assertEqual(got, want)
        self.assertTrue(want)
        return got

    def test_values_read_back_exactly(self):
        got = self.same(lambda m: m.order_by("name").values_list("name", "at", "until"))
        self.assertEqual(got[1][1], T + US)
        self.assertEqual(got[6][1].microsecond, 499999)

    def test_filters(self):
        for value in (T, T + US, T + 998 * US, T + 999 * US, T + 1000 * US, T - US):
            for lookup in ("exact", "lt", "lte", "gt", "gte"):
                got = list(Event.objects.filter(**{"at__" + lookup: value}).order_by("name").values_list("name", flat=True))
                want = list(Event.objects.using("lite").filter(**{"at__" + lookup: value}).order_by("name")
                            .values_list("name", flat=True))
                self.assertEqual(got, want, (lookup, value))
        self.same(lambda m: m.filter(at__in=[T + US, T + 999 * US]).values_list("name", flat=True).order_by("name"))
        self.same(lambda m: m.exclude(at__in=[T + US, T]).values_list("name", flat=True).order_by("name"))
        self.same(lambda m: m.filter(at__range=(T + US, T + 999 * US)).values_list("name", flat=True).order_by("name"))
        self.same(lambda m: m.filter(~Q(at=T + US)).values_list("name", flat=True).order_by("name"))
        self.same(lambda m: m.filter(at__lt=F("until")).values_list("name", flat=True).order_by("name"))
        self.same(lambda m: m.filter(at=F("until")).values_list("name", flat=True))

    def test_ordering(self):
        self.same(lambda m: m.exclude(at=None).order_by("at").values_list("name", flat=True))
        self.same(lambda m: m.exclude(at=None).order_by("-at").values_list("name", flat=True))
        self.same(lambda m: m.order_by("until", "name").values_list("name", flat=True))

    def test_aggregates_and_groups(self):
        self.same(lambda m: [m.aggregate(lo=Min("at"), hi=Max("at"), u=Max("until"))])
        self.same(lambda m: m.values("until").annotate(n=Count("id")).order_by("until"))
        self.same(lambda m: m.exclude(until=None).values_list("until", flat=True).distinct().order_by("until"))

    def test_arithmetic(self):
        for delta in (US, -US, 999 * US, datetime.timedelta(days=-3, microseconds=7)):
            self.same(lambda m: m.exclude(at=None).annotate(x=F("at") + delta).order_by("name").values_list("name", "x"))
        self.same(lambda m: m.exclude(at=None).annotate(x=F("at") - F("length")).order_by("name").values_list("name", "x"))
        self.same(lambda m: m.exclude(at=None).exclude(until=None).annotate(x=F("until") - F("at"))
                  .order_by("name").values_list("name", "x"))
        self.same(lambda m: m.filter(until__gt=F("at") + F("length")).values_list("name", flat=True).order_by("name"))

    def test_functions(self):
        self.same(lambda m: m.exclude(at=None).annotate(s=Extract("at", "second"), t=Trunc("at", "second"),
                                                        tt=TruncTime("at")).order_by("name").values_list("s", "t", "tt"))
        # CAST(datetime AS time): SQLite keeps milliseconds (its
        # time_cast_precision is 3), djongo every microsecond
        got = list(Event.objects.exclude(at=None).annotate(c=Cast("at", models.TimeField())).order_by("name")
                   .values_list("c", flat=True))
        self.assertEqual(got, [a.time() for _, a, _, _ in sorted(DATA) if a])
        self.same(lambda m: m.annotate(g=Greatest("at", "until"), l=Least("at", "until")).exclude(at=None)
                  .exclude(until=None).order_by("name").values_list("g", "l"))

    def test_truncation_in_a_time_zone(self):
        """Trunc to a TimeField or a DateField with tzinfo: the wall-clock
        time / the day in that zone (djongo/operations.py)."""
        import zoneinfo

        for tz in (zoneinfo.ZoneInfo("Australia/Melbourne"), zoneinfo.ZoneInfo("America/Los_Angeles")):
            self.same(lambda m: m.exclude(at=None).annotate(
                t=Trunc("at", "second", output_field=models.TimeField(), tzinfo=tz),
                d=Trunc("at", "day", output_field=models.DateField(), tzinfo=tz)).order_by("name").values_list("t", "d"))

    def test_updates(self):
        for db in DBS:
            Event.objects.using(db).filter(name="a").update(at=T + 7 * US)
            Event.objects.using(db).filter(name="b").update(at=F("until"))
            Event.objects.using(db).filter(name="c").update(at=F("at") + datetime.timedelta(microseconds=2))
            Event.objects.using(db).filter(name="e").update(at=T)
            e = Event.objects.using(db).get(name="d")
            e.at = T + 3 * US
            e.save()
        got = self.same(lambda m: m.order_by("name").values_list("name", "at"))
        self.assertEqual(got[0][1], T + 7 * US)
        self.assertEqual(got[3][1], T + 3 * US)

    def test_bulk_update(self):
        """bulk_update: UPDATE ... SET at = CASE WHEN pk = .. THEN %s ... END"""
        for db in DBS:
            objs = list(Event.objects.using(db).order_by("name"))
            for i, o in enumerate(objs):
                o.at = T + (i * 333) * US if i % 3 else None
            Event.objects.using(db).bulk_update(objs, ["at"])
        got = self.same(lambda m: m.order_by("name").values_list("name", "at"))
        self.assertEqual(got[1][1], T + 333 * US)

    def test_bulk_create_update_conflicts(self):
        for db in DBS:
            Event.objects.using(db).bulk_create(
                [Event(name="a", at=T + 11 * US), Event(name="h", at=T + 12 * US), Event(name="e", at=T)],
                update_conflicts=True, unique_fields=["name"], update_fields=["at"])
        self.same(lambda m: m.order_by("name").values_list("name", "at"))
