import time, statistics
import pytest
from django.test import RequestFactory
from django.template.loader import get_template
from django.db import connection
from tests.bench.test_history_bench import fill, as_served  # noqa
from compare.history import HistoryFilters, filtered, paginate, with_rows, row, activity
from django.conf import settings
pytestmark = [pytest.mark.bench, pytest.mark.django_db]

def timed(label, fn, n=15):
    fn()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); r=fn(); ts.append((time.perf_counter()-t)*1000)
    print(f"{label:40s} {statistics.median(ts):7.1f} ms")
    return r

def test_prof(auth_client, user, other_user, as_served):
    fill(other_user, user, 10000)
    for qs in [{}, {"model":"gpt-image-2","status":"partial"}]:
        print("==", qs)
        timed("whole view", lambda: auth_client.get("/runs/", qs))
        form = timed("form init", lambda: HistoryFilters(qs))
        form.is_valid()
        runs = timed("filtered (build)", lambda: filtered(HistoryFilters(qs), user))
        page = timed("paginate (sql+prefetch)", lambda: paginate(form, with_rows(runs), {}, 24))
        def pag_noprefetch():
            return paginate(form, runs.prefetch_related(None), {}, 24)
        timed("paginate no prefetch", pag_noprefetch)
        rows = timed("rows", lambda: [row(r, user) for r in page.runs])
        timed("activity", lambda: activity(form, user, runs=runs))
        tpl = get_template("history.html")
        ctx = {"form": form, "page": page, "rows": rows, "query": {}, "filtering": False, "activity": activity(form, user, runs=runs), "eager_rows": 4}
        from django.test.client import RequestFactory
        req = RequestFactory().get("/runs/"); req.user = user
        from django_htmx.middleware import HtmxDetails
        req.htmx = HtmxDetails(req)
        timed("render full", lambda: tpl.render(ctx, req))
        timed("render form only", lambda: "".join(str(f) for f in form))
        timed("render results partial", lambda: get_template("history.html#results").render(ctx, req))
        ctx2 = dict(ctx, activity=None, page=page)
        class P: pass
        timed("render results, no chart", lambda: get_template("history.html#results").render(dict(ctx, page=type("X",(object,),dict(vars(page), number=2, has_other_pages=False, more_than=False, note=""))()), req))
        from django.test.utils import CaptureQueriesContext
        with CaptureQueriesContext(connection) as c:
            auth_client.get("/runs/", qs)
        for q in c.captured_queries:
            print(q["time"], q["sql"][:150])
