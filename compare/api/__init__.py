"""The JSON API: create a comparison, read one, list them (README.md, "Scripts").

- views.py: the endpoints, each a short function that reads, raises, answers;
- suites.py: the suite endpoints (list suites, start a suite run, its progress and
  results, cancel, compare two), through compare/suites/dispatch.py and results.py;
- errors.py: `ApiError`, and the one place it becomes {"error": {"message", "fields"}};
- auth.py: the per-user token (`Authorization: Bearer cmp_…`), never the session cookie;
- schema.py: the JSON body read into RunForm, the one validation path it shares with
  the web form and the `compare` command (compare/forms.py);
- serializers.py: runs, generations and images as JSON.

Why our own small layer and not django-ninja: every value is validated by RunForm, the
one path shared with the web form and the `compare` command. Under ninja a body would
be checked twice (a pydantic schema, then the form), two rule sets that could drift,
and keeping the {"error": {...}} bodies and their 400/401/404/405/413/429 statuses,
which users' scripts and tests/test_api.py read, would mean overriding ninja's own
(422 with {"detail": [...]}). It would save the hundred-odd lines of JSON type checks
and error framing in schema.py and errors.py, not the form; what we give up is its
generated OpenAPI page, for three endpoints documented in README.md.
"""
