"""The suite pages: the list (new suite, import), one suite (its cases, edited in place,
"Run this suite"), and the file export. Every change of the cases goes through
compare/suites/edits.py; the built-in suite is read-only here (duplicate it to edit)."""

from typing import Any

from django.contrib import messages
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from compare import pricing
from compare.parsing import parse_whole_number
from compare.registry import get_model, offered_models
from compare.suites import dispatch, edits, io
from compare.suites.forms import (
    CaseForm,
    ConfirmImportForm,
    ImportForm,
    RunSuiteForm,
    SuiteForm,
    options_in_words,
)
from compare.suites.models import Suite, SuiteCase, SuiteRun
from compare.views.base import AuthenticatedRequest

# The page can show the add form and an edit form at once: their fields need distinct ids.
ADD_ID, EDIT_ID = "add-%s", "edit-%s"


def _gone(request: AuthenticatedRequest, suite_id: int, gone: edits.Gone) -> HttpResponse:
    """Someone else deleted the suite or case meanwhile: say so, on the suite if it is still there."""
    messages.error(request, f"{gone} Nothing was changed.")
    return redirect("suite_detail", suite_id) if Suite.objects.filter(pk=suite_id).exists() else redirect("suites")


def _editable(request: AuthenticatedRequest, suite: Suite) -> bool:
    if suite.builtin:
        messages.error(request, "The built-in suite cannot be changed: duplicate it and edit the copy.")
    return not suite.builtin


# --- the list ----------------------------------------------------------------------------


def _list_page(request: AuthenticatedRequest, status: int = 200, **context: Any) -> HttpResponse:
    last_run = SuiteRun.objects.filter(suite=OuterRef("pk")).order_by("-created_at")
    suites = Suite.objects.annotate(
        case_count=Count("cases", distinct=True),
        last_run_at=Max("suite_runs__created_at"),
        last_run_id=Subquery(last_run.values("pk")[:1]),
    ).order_by("-builtin", "name")
    defaults = {"suites": suites, "suite_form": SuiteForm(), "import_form": ImportForm()}
    return render(request, "suites.html", {**defaults, **context}, status=status)


@require_GET
def suites(request: AuthenticatedRequest) -> HttpResponse:
    return _list_page(request)


@require_POST
def suite_create(request: AuthenticatedRequest) -> HttpResponse:
    form = SuiteForm(request.POST)
    if not form.is_valid():
        return _list_page(request, 422, suite_form=form, open="new")
    try:
        suite = edits.create_suite(author=request.user, cases=[], **form.cleaned_data)
    except IntegrityError:  # created by someone else between the check and the save
        form.add_error("name", "A suite with this name exists already; pick another name.")
        return _list_page(request, 422, suite_form=form, open="new")
    messages.success(request, f"Created “{suite.name}”. Add its cases below.")
    return redirect(suite)


@require_POST
def suite_import(request: AuthenticatedRequest) -> HttpResponse:
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _list_page(request, 422, import_form=form, open="import")
    data: io.SuiteData = form.cleaned_data["file"]
    existing = Suite.objects.filter(name=data.name).first()
    if existing is not None:
        confirm = ConfirmImportForm(initial={"document": io.data_to_json(data)})
        return _list_page(request, 200, confirm=confirm, incoming=data, existing=existing, open="import")
    return _create_from(request, data, data.name)


def _create_from(request: AuthenticatedRequest, data: io.SuiteData, name: str) -> HttpResponse:
    try:
        suite = edits.create_suite(name=name, description=data.description, cases=data.cases, author=request.user)
    except IntegrityError:
        messages.error(request, f"A suite named “{name}” was created meanwhile; import the file again.")
        return redirect("suites")
    messages.success(request, f"Imported “{suite.name}”: {len(data.cases)} case{'s' if len(data.cases) != 1 else ''}.")
    return redirect(suite)


@require_POST
def suite_import_confirm(request: AuthenticatedRequest) -> HttpResponse:
    form = ConfirmImportForm(request.POST)
    if not form.is_valid():
        problems = [e for errors in form.errors.values() for e in errors]
        return _list_page(request, 422, import_problems=problems, open="import")
    data: io.SuiteData = form.cleaned_data["document"]
    existing = Suite.objects.filter(name=data.name).first()
    if form.cleaned_data["action"] == "copy" or existing is None:
        return _create_from(request, data, edits.free_name(data.name))
    if not _editable(request, existing):
        return redirect("suites")
    try:
        edits.replace_cases(existing, data.cases, description=data.description)
    except edits.Gone as gone:
        return _gone(request, existing.pk, gone)
    messages.success(request, f"“{existing.name}” is now version {existing.version}, with the file's cases.")
    return redirect(existing)


# --- one suite ---------------------------------------------------------------------------


def _suite_page(request: AuthenticatedRequest, suite: Suite, status: int = 200, **context: Any) -> HttpResponse:
    cases = list(suite.cases.all())
    editing = context.pop("editing", None)
    if editing is None and request.method == "GET" and not suite.builtin:
        editing = parse_whole_number(request.GET.get("edit"), default=None)
    case_form = context.pop("case_form", None)
    if case_form is None and editing is not None:
        target = next((c for c in cases if c.pk == editing), None)
        case_form = CaseForm(initial=CaseForm.initial_for(target), auto_id=EDIT_ID) if target else None
    defaults = {m.key for m in offered_models() if m.default and m.available}
    run_form = context.pop("run_form", None) or RunSuiteForm(initial={"models": sorted(defaults)})
    page = {
        "suite": suite,
        "cases": [(case, options_in_words(case.options)) for case in cases],
        "editing": editing,
        "case_form": case_form,
        "add_form": CaseForm(auto_id=ADD_ID),
        "suite_form": SuiteForm(initial={"name": suite.name, "description": suite.description}, suite=suite),
        "edit_suite": request.GET.get("edit") == "suite" and not suite.builtin,
        "run_form": run_form,
        "estimate": _estimate(suite, run_form),
        "recent_runs": suite.suite_runs.all()[:5],
        **context,
    }
    return render(request, "suite.html", page, status=status)


def _estimate(suite: Suite, form: RunSuiteForm) -> dict[str, Any]:
    data = form.data if form.is_bound else {}
    keys = data.getlist("models") if hasattr(data, "getlist") else list(form.initial.get("models", []))
    keys = [key for key in dict.fromkeys(keys) if get_model(key) is not None]
    samples = (
        parse_whole_number(
            data.get("samples"), default=None, minimum=dispatch.MIN_SAMPLES, maximum=dispatch.MAX_SAMPLES
        )
        if form.is_bound
        else form.fields["samples"].initial
    )
    cases = suite.cases.count()
    count = cases * len(keys) * samples if samples else None
    cost = dispatch.estimate_range(suite, keys, samples) if keys and samples else None
    return {
        "cases": cases,
        "models": len(keys),
        "samples": samples,
        "generations": count,
        "cost": cost,  # a range (compare/pricing.py `Estimate`): with quality auto the provider picks
        "prices_as_of": pricing.as_of(pricing.prices_checked([m for k in keys if (m := get_model(k))])),
        "samples_range": f"{dispatch.MIN_SAMPLES}–{dispatch.MAX_SAMPLES}",
    }


@require_GET
def suite_detail(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    return _suite_page(request, get_object_or_404(Suite, pk=suite_id))


@require_GET
def suite_estimate(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    """The run form's estimate line, for htmx while models and samples change."""
    suite = get_object_or_404(Suite, pk=suite_id)
    form = RunSuiteForm(request.GET)
    return render(request, "suite.html#estimate", {"suite": suite, "estimate": _estimate(suite, form)})


@require_POST
def suite_update(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    if not _editable(request, suite):
        return redirect(suite)
    form = SuiteForm(request.POST, suite=suite)
    if not form.is_valid():
        return _suite_page(request, suite, 422, suite_form=form, edit_suite=True)
    try:
        with transaction.atomic():
            saved = Suite.objects.filter(pk=suite.pk).update(**form.cleaned_data, updated_at=timezone.now())
    except IntegrityError:  # the name was taken between the check and the save
        form.add_error("name", "A suite with this name exists already; pick another name.")
        return _suite_page(request, suite, 422, suite_form=form, edit_suite=True)
    if not saved:
        return _gone(request, suite.pk, edits.Gone("This suite was deleted meanwhile."))
    return redirect(suite)


@require_POST
def suite_delete(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    if suite.builtin:
        messages.error(request, "The built-in suite cannot be deleted; you can duplicate it.")
        return redirect(suite)
    suite.delete()  # its suite runs keep their snapshot of the cases
    messages.success(request, f"Deleted “{suite.name}”. Its suite runs are kept.")
    return redirect("suites")


@require_POST
def suite_duplicate(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    try:
        copy = edits.duplicate(suite, request.user)
    except IntegrityError:  # another copy took the free name between the check and the save
        messages.error(request, "Another copy of this suite was made at the same moment; duplicate it again.")
        return redirect(suite)
    messages.success(request, f"Created “{copy.name}”, an editable copy.")
    return redirect(copy)


@require_GET
def suite_export(request: AuthenticatedRequest, suite_id: int, fmt: str) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    if fmt == "json":
        response = HttpResponse(io.to_json(suite), content_type="application/json; charset=utf-8")
    else:
        response = HttpResponse(io.to_yaml(suite), content_type="application/yaml; charset=utf-8")
    slug = slugify(suite.name)[:60] or "suite"  # ASCII only: a safe header value
    response["Content-Disposition"] = f'attachment; filename="{slug}-v{suite.version}.{fmt}"'
    return response


@require_POST
def suite_run_start(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    form = RunSuiteForm(request.POST)
    if form.is_valid():
        try:
            suite_run = dispatch.start_suite_run(
                suite, request.user, form.cleaned_data["models"], form.cleaned_data["samples"]
            )
            return redirect(suite_run.get_absolute_url())
        except dispatch.SuiteRunRefused as refused:
            field = refused.field if refused.field in form.fields else None
            form.add_error(field, refused.message)
    return _suite_page(request, suite, 422, run_form=form)


# --- the cases -----------------------------------------------------------------------------


def _case(suite_id: int, case_id: int) -> SuiteCase:
    return get_object_or_404(SuiteCase.objects.select_related("suite"), pk=case_id, suite_id=suite_id)


@require_POST
def case_add(request: AuthenticatedRequest, suite_id: int) -> HttpResponse:
    suite = get_object_or_404(Suite, pk=suite_id)
    if not _editable(request, suite):
        return redirect(suite)
    form = CaseForm(request.POST, auto_id=ADD_ID)
    if not form.is_valid():
        return _suite_page(request, suite, 422, add_form=form, adding=True)
    try:
        case = edits.add_case(suite, form.case_data())
    except edits.Gone as gone:
        return _gone(request, suite.pk, gone)
    messages.success(request, f"Added case {case.position + 1}; the suite is now version {suite.version}.")
    return redirect(f"{suite.get_absolute_url()}#case-{case.pk}")


@require_POST
def case_edit(request: AuthenticatedRequest, suite_id: int, case_id: int) -> HttpResponse:
    case = _case(suite_id, case_id)
    if not _editable(request, case.suite):
        return redirect(case.suite)
    form = CaseForm(request.POST, auto_id=EDIT_ID)
    if not form.is_valid():
        return _suite_page(request, case.suite, 422, case_form=form, editing=case.pk)
    try:
        changed = edits.update_case(case, form.case_data())
    except edits.Gone as gone:
        return _gone(request, suite_id, gone)
    if changed:
        messages.success(request, f"Saved case {case.position + 1}; the suite is now version {case.suite.version}.")
    return redirect(f"{case.suite.get_absolute_url()}#case-{case.pk}")


@require_POST
def case_delete(request: AuthenticatedRequest, suite_id: int, case_id: int) -> HttpResponse:
    case = _case(suite_id, case_id)
    suite = case.suite
    if _editable(request, suite):
        try:
            edits.delete_case(case)
        except edits.Gone as gone:
            return _gone(request, suite_id, gone)
        messages.success(request, f"Deleted a case; the suite is now version {suite.version}.")
    return redirect(suite)


@require_POST
def case_move(request: AuthenticatedRequest, suite_id: int, case_id: int) -> HttpResponse:
    case = _case(suite_id, case_id)
    if _editable(request, case.suite):
        try:
            edits.move_case(case, -1 if request.POST.get("direction") == "up" else 1)
        except edits.Gone as gone:
            return _gone(request, suite_id, gone)
    return redirect(f"{case.suite.get_absolute_url()}#case-{case.pk}")
